"""`segstudio export` of a fold set: one ONNX graph that averages the folds' probabilities (each
fold with its own normalisation and temperature), checked against PyTorch like a single run's."""

import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.inference import Predictor
from segstudio.inference.export import RELATIVE_TOLERANCE, export_model, sample_inputs
from segstudio.model.backends import FoldSetBackend, TorchBackend
from segstudio.model.onnx import read_onnx_meta, run_onnx

pytestmark = pytest.mark.slow  # two U-Nets traced and checked


@pytest.fixture(scope="module")
def exported(fold_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "folds.onnx"
    return out, export_model(fold_set, "onnx", out)


@pytest.fixture(scope="module")
def ensemble(fold_set):
    return FoldSetBackend.load(fold_set, "cpu")


def members_mean(fold_set, x: torch.Tensor) -> torch.Tensor:
    """The mean of the folds' softmaxes, each fold loaded on its own, its logits over its temperature."""
    total = 0
    for fold in (0, 1):
        member = TorchBackend.load(fold_set / f"fold_{fold}", "cpu")
        logits = torch.log(member.probabilities(x))  # the softmax's input, up to a constant per pixel
        total = total + torch.softmax(logits / float(member.meta.get("temperature", 1.0)), dim=1)
    return total / 2


def test_the_onnx_graph_averages_the_folds_probabilities(exported, ensemble, fold_set):
    out, report = exported
    assert report.mask_agreement == 1.0 and report.max_abs_diff <= report.tolerance
    meta = read_onnx_meta(out)
    assert meta["ensemble"]["folds"] == [0, 1] and meta["mean"] == [0.0] * 3 and "temperature" not in meta
    x = sample_inputs(3, 32)
    onnx_probs = run_onnx(out, x.numpy())
    torch_probs = ensemble.probabilities(x).numpy()
    mean = members_mean(fold_set, x).numpy()
    assert np.abs(onnx_probs - torch_probs).max() <= report.tolerance
    assert np.abs(torch_probs - mean).max() < 1e-5
    assert np.abs(onnx_probs - mean).max() <= report.tolerance


def test_the_check_s_tolerance_follows_the_folds_logits_not_the_averaged_log_probabilities(exported, ensemble):
    """Fold 1's logits are shifted by 300 (150 over its temperature): float32 rounds them at that
    scale, so the check allows for it; the log of the averaged probabilities is far smaller."""
    _, report = exported
    x = sample_inputs(3, 32)
    assert report.logit_scale == pytest.approx(ensemble.logit_scale(x))
    assert report.logit_scale > 150 and report.tolerance == pytest.approx(RELATIVE_TOLERANCE * report.logit_scale)
    with torch.no_grad():
        log_mean = ensemble.model(x)
    assert float(log_mean.abs().max()) < report.logit_scale / 4


def test_the_exported_fold_set_predicts_the_fold_set_s_masks(exported, ensemble):
    out, report = exported
    onnx, folds = Predictor.load(out), Predictor(ensemble)
    assert (onnx.backend, folds.backend) == ("onnx", "torch")
    rng = np.random.default_rng(0)
    for shape in ((40, 50), (32, 32), (17, 64)):
        small = rng.integers(0, 255, (6, 6), dtype=np.uint8)
        image = np.asarray(Image.fromarray(small).resize(shape[::-1], Image.BILINEAR))
        a, b = onnx.probabilities(image), folds.probabilities(image)
        assert np.abs(a - b).max() <= report.tolerance
        top2 = np.sort(b, axis=0)[-2:]
        clear = top2[1] - top2[0] > 2 * report.tolerance
        assert (a.argmax(0) == b.argmax(0))[clear].all() and clear.mean() > 0.9
