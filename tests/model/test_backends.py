"""Backends: a run folder (PyTorch), a fold set, an exported file (onnxruntime) and a test double
behind the one call the predictor makes, probabilities(x)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from segstudio.errors import SegstudioError
from segstudio.inference import Predictor
from segstudio.model.backends import Backend, FoldSetBackend, OnnxBackend, TorchBackend, load_backend
from segstudio.model.unet import build_unet
from segstudio.preprocess.plan import Plan

CPU = torch.device("cpu")


def test_a_run_folder_loads_as_the_network_it_saved_with_its_normalisation(model_run):
    backend = TorchBackend.load(model_run, "cpu")
    meta = json.loads((model_run / "model.json").read_text())
    assert (backend.name, backend.meta, backend.run_dir, backend.device) == ("torch", meta, model_run, CPU)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    saved = build_unet(Plan.from_meta(meta))
    saved.load_state_dict(torch.load(model_run / "model.pth", weights_only=True))
    mean, std = (torch.tensor(meta[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        expected = torch.softmax(saved.eval()((x - mean) / std), dim=1)
    probs = backend.probabilities(x)
    assert probs.shape == (2, 3, 32, 32) and probs.dtype == torch.float32
    torch.testing.assert_close(probs, expected)
    with torch.no_grad():
        torch.testing.assert_close(backend.graph()(x), expected)  # what the export writes


@pytest.mark.parametrize("norm, layer", [("batch", nn.BatchNorm2d), ("instance", nn.InstanceNorm2d)])
def test_the_unet_gets_the_plan_s_normalisation_layers(norm, layer):
    meta = {"codes": ["a", "b"], "size": 64, "mean": [0.0] * 3, "std": [1.0] * 3, "arch": "resnet18", "norm": norm}
    model = build_unet(Plan.from_meta(meta))
    assert {type(m) for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d))} == {layer}


def test_a_folder_without_a_model_is_refused(tmp_path):
    with pytest.raises(SegstudioError, match="holds no trained model"):
        load_backend(tmp_path, "cpu")


def test_load_backend_picks_by_what_the_path_holds(fold_set):
    assert type(load_backend(fold_set / "fold_0", "cpu")) is TorchBackend
    both = load_backend(fold_set, "cpu")
    assert type(both) is FoldSetBackend and both.meta["ensemble"]["folds"] == [0, 1]
    assert both.run_dir == fold_set / "fold_0"  # the predictor's guard on the training folders reads it


def test_an_onnx_file_segstudio_did_not_write_is_refused(tmp_path):
    path = tmp_path / "plain.onnx"
    torch.onnx.export(nn.Conv2d(3, 2, 1), (torch.rand(1, 3, 8, 8),), str(path), dynamo=False)
    with pytest.raises(SegstudioError, match="without segstudio's metadata"):
        OnnxBackend.load(path)


class Halves:
    """A test double: the left half of every input is class 1, the right half class 0."""

    name = "double"
    device = CPU
    run_dir = None

    def __init__(self):
        self.meta = {"codes": ["background", "left"], "size": 16, "n_in": 3, "mean": [0.0] * 3, "std": [1.0] * 3}
        self.seen = []

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        left = torch.zeros(x.shape[0], 1, *x.shape[-2:])
        left[..., : x.shape[-1] // 2] = 1
        return torch.cat([1 - left, left], dim=1)


def test_the_predictor_runs_whatever_backend_it_holds():
    double: Backend = Halves()
    predictor = Predictor(double)
    mask = predictor.predict(np.zeros((20, 40), np.uint8))
    assert double.seen == [(1, 3, 16, 16)]  # resized to the model's size, grey repeated to its channels
    assert (mask[:, :18] == 1).all() and (mask[:, 22:] == 0).all()
    assert predictor.backend == "double" and predictor.model is None and predictor.training_folders == ("", "")
