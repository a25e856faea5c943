"""Predicting a scan slice by slice (inference/volumes.py): each slice's probabilities handed to
a caller, as the validation scorer samples them for calibration."""

import numpy as np
import torch

from segstudio.inference.volumes import predict_volume
from segstudio.io import Volume
from segstudio.preprocess.plan import Plan
from segstudio.preprocess.slicing import take_slice


class Brightness:
    """A model whose foreground probability is the pixel's brightness (grey level / 255)."""

    codes = ["background", "organ"]
    tta = False

    def __init__(self, axis: str = "axial"):
        self.plan = Plan.from_meta({"window": "auto", "n_in": 3, "codes": self.codes, "size": 8,
                                    "volumes": {"axis": axis}})

    def probabilities_resized(self, batch, flip=False):
        x = torch.from_numpy(batch.astype(np.float32))[:, :1] / 255
        return torch.cat([1 - x, x], dim=1)

    def calibrated(self, probs):
        return probs


def test_each_slices_probabilities_reach_the_hook_at_the_scans_size():
    rng = np.random.default_rng(0)
    volume = Volume(rng.normal(0, 1, (5, 12, 10)).astype(np.float32), np.eye(4), (2.0, 1.0, 1.0))
    for axis, shape in (("axial", (2, 12, 10)), ("coronal", (2, 5, 10))):
        seen = {}
        probabilities = np.zeros((2, *volume.shape), np.float32)
        labels = predict_volume(Brightness(axis), volume, probabilities=probabilities,
                                on_slice=lambda k, p: seen.setdefault(k, p.clone()))
        dim = 0 if axis == "axial" else 1
        assert sorted(seen) == list(range(volume.shape[dim])) and len(seen) == volume.shape[dim]
        for k, probs in seen.items():
            assert probs.shape == shape
            assert np.array_equal(probs.argmax(dim=0).numpy(), take_slice(labels, dim, k))
            assert np.allclose(probs.numpy(), [take_slice(plane, dim, k) for plane in probabilities])
