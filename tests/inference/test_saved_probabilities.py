"""`predict --save-probabilities`: NAME.npz as nnU-Net writes them (float16 under "probabilities"),
(K, H, W) per image with a fold set's averaged probabilities, (K, Z, Y, X) per scan in the voxel
order SimpleITK reads the written label file in."""

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
import torch
from PIL import Image
from torch import nn

from segstudio.cli.main import build_parser
from segstudio.inference import Predictor
from segstudio.model.backends import TorchBackend
from segstudio.model.ensemble import FoldEnsemble, ensemble_meta

CPU = torch.device("cpu")


def _meta(mean: float, std: float, **extra) -> dict:
    return {"format": 1, "arch": "resnet18", "n_in": 1, "n_out": 3, "codes": ["bg", "a", "b"], "size": 16,
            "mean": [mean], "std": [std], "window": "auto", "norm": "batch", **extra}


def _npz(path: Path) -> np.ndarray:
    with np.load(path) as saved:
        assert list(saved) == ["probabilities"]
        return saved["probabilities"]


def test_a_fold_sets_averaged_probabilities_are_saved_as_npz(tmp_path):
    torch.manual_seed(0)
    folds = [nn.Conv2d(1, 3, 1), nn.Conv2d(1, 3, 1)]
    metas = [_meta(0.2, 0.5), _meta(0.6, 0.3)]
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.random.default_rng(0).integers(0, 255, (20, 24), dtype=np.uint8)
    Image.fromarray(pixels).save(images / "img0.png")

    ensemble = Predictor(TorchBackend(FoldEnsemble(folds, metas).eval(), ensemble_meta(metas, [0, 1]), CPU))
    out = tmp_path / "out"
    ensemble.predict_folder(images, out, save_probabilities=True)
    probs = _npz(out / "img0.npz")
    assert probs.dtype == np.float16 and probs.shape == (3, 20, 24)
    assert not list(out.glob("*.npy"))
    np.testing.assert_allclose(probs.astype(np.float32).sum(axis=0), 1.0, atol=3e-3)
    assert (probs.argmax(axis=0) == np.asarray(Image.open(out / "img0.png"))).mean() > 0.99  # float16 ties aside
    each = [Predictor(TorchBackend(m.eval(), meta, CPU)).probabilities(pixels) for m, meta in zip(folds, metas)]
    np.testing.assert_allclose(probs, (each[0] + each[1]) / 2, atol=2e-3)  # the folds' mean, not one fold's


def test_a_scans_probabilities_follow_its_label_file_voxel_by_voxel(tmp_path):
    class Bright(nn.Module):  # foreground where the input is above its mean
        def forward(self, x):
            fg = x.mean(dim=1, keepdim=True)
            return torch.cat([-fg, fg], dim=1)

    meta = {"codes": ["background", "foreground"], "size": 16, "n_in": 3, "mean": [0.5] * 3, "std": [0.25] * 3,
            "window": "auto", "volumes": {"axis": "axial", "context": 1, "channels": 1, "modalities": []}}
    scans = tmp_path / "scans"
    scans.mkdir()
    data = np.random.default_rng(1).normal(100, 40, (10, 12, 6)).astype(np.float32)  # (i, j, k), not cubic
    affine = np.diag([-1.0, 1.0, 2.0, 1.0])  # an LAS file: its voxel order is not the canonical one
    nib.save(nib.Nifti1Image(data, affine), scans / "case1.nii.gz")

    out = tmp_path / "out"
    Predictor(TorchBackend(Bright(), meta, CPU)).predict_folder(scans, out, save_probabilities=True)
    probs = _npz(out / "case1.npz")
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case1.nii.gz")))  # (k, j, i)
    assert probs.dtype == np.float16 and probs.shape == (2, 6, 12, 10) == (2, *labels.shape)
    assert 0 < labels.mean() < 1 and (probs.argmax(axis=0) == labels).mean() > 0.99


def test_save_probabilities_is_the_flag_and_probabilities_its_old_name():
    parse = build_parser().parse_args
    base = ["predict", "--model", "m", "--images", "i", "--out", "o"]
    assert parse([*base, "--save-probabilities"]).probabilities and parse([*base, "--probabilities"]).probabilities
    assert not parse(base).probabilities
    help_text = build_parser()._subparsers._group_actions[0].choices["predict"].format_help()
    assert "--save-probabilities" in help_text and "--probabilities " not in help_text and ".npz" in help_text
