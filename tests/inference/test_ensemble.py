"""Fold ensembles: probabilities (not logits) averaged, each fold normalised its own way; folds
trained differently or missing are refused with what to do."""

import json

import pytest
import torch
from torch import nn

from segstudio.data.folds import FOLDS_FILE
from segstudio.errors import SegstudioError
from segstudio.model.ensemble import FoldEnsemble, ensemble_meta, fold_runs


def _meta(mean, std, **extra):
    return {"format": 1, "arch": "resnet18", "n_in": 1, "n_out": 3, "codes": ["bg", "a", "b"], "size": 32,
            "mean": [mean], "std": [std], "window": "auto", "norm": "batch", **extra}


def test_the_ensemble_averages_probabilities_with_each_folds_own_normalisation_and_temperature():
    torch.manual_seed(0)
    models = [nn.Conv2d(1, 3, 1) for _ in range(3)]
    metas = [_meta(0.1, 0.5), _meta(0.3, 0.2, temperature=2.0), _meta(0.0, 1.0)]
    ensemble = FoldEnsemble(models, metas).eval()
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        got = torch.softmax(ensemble(x), dim=1)  # what the predictor takes from it
        want = sum(torch.softmax(m((x - meta["mean"][0]) / meta["std"][0]) / meta.get("temperature", 1.0), dim=1)
                   for m, meta in zip(models, metas)) / 3
        logits_mean = torch.softmax(sum(m((x - meta["mean"][0]) / meta["std"][0]) for m, meta in zip(models, metas)) / 3, 1)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    assert (got - logits_mean).abs().max() > 1e-3  # averaging logits would be another model


def test_folds_with_another_recipe_are_refused_and_the_shared_one_kept():
    meta = ensemble_meta([_meta(0.1, 0.5, epoch=3), _meta(0.2, 0.4, epoch=7)], [0, 1])
    assert meta["mean"] == [0.0] and meta["std"] == [1.0] and "epoch" not in meta
    assert meta["ensemble"]["folds"] == [0, 1] and meta["window"] == "auto"
    with pytest.raises(SegstudioError, match="Fold 1 was trained with other settings.*size, window"):
        ensemble_meta([_meta(0.1, 0.5), _meta(0.1, 0.5, size=64, window="40/400")], [0, 1])


def test_a_missing_fold_is_refused_unless_allowed(tmp_path):
    (tmp_path / FOLDS_FILE).write_text(json.dumps({"folds": 3, "runs": {"0": "fold_0", "1": "fold_1", "2": "fold_2"}}))
    for fold in (0, 2):
        run = tmp_path / f"fold_{fold}"
        run.mkdir()
        (run / "model.pth").write_bytes(b"x")
        (run / "model.json").write_text("{}")
    with pytest.raises(SegstudioError, match=r"Fold\(s\) 1 .*--allow-missing-folds"):
        fold_runs(tmp_path)
    assert [f for f, _ in fold_runs(tmp_path, allow_missing=True)] == [0, 2]
    (tmp_path / FOLDS_FILE).write_text("not json")
    with pytest.raises(SegstudioError, match="cannot be read as a fold set"):
        fold_runs(tmp_path)
