"""Out-of-fold review of a fold set (reporting/run_review.py): every labelled case listed once,
scored by the fold that held it out; the mean Dice's bootstrap interval; the fold-set steps the
app's Train area takes (training/fold_set.py)."""

import json
import math

import numpy as np
import pytest

from segstudio.config import TrainConfig
from segstudio.data import load_dataset
from segstudio.data.folds import FOLDS_FILE
from segstudio.errors import SegstudioError
from segstudio.inference import Predictor, review_items
from segstudio.reporting.after_training import BoundaryScores
from segstudio.reporting.run_review import DiceSummary, mean_interval, merged, review_run
from segstudio.training import events as ev
from segstudio.training.event_json import to_json
from segstudio.training.fold_set import discard_if_empty, fold_refusal, fold_step, start_fold_set, trained_folds

TINY = ["--epochs", "1", "--size", "32", "--bs", "8", "--input", "resize", "--arch", "resnet18", "--no-pretrained",
        "--device", "cpu", "--no-metrics"]


@pytest.mark.slow
def test_every_labelled_case_is_reviewed_once_by_the_fold_that_held_it_out(sample_dirs, tmp_path):
    from segstudio.cli.main import main

    images, masks = sample_dirs
    assert main(["train", "--images", str(images), "--masks", str(masks), *TINY, "--out", str(tmp_path),
                 "--name", "fs", "--folds", "2"]) == 0
    root = tmp_path / "fs"
    review = review_run(root)
    n_images = len(list(images.iterdir()))
    names = [it.name for it in review.items]
    assert len(names) == n_images == len(set(names))  # all labelled cases, each once
    assert review.folds == (0, 1) and review.missing == () and review.out_of_fold
    assert review.predictor.meta["ensemble"]["folds"] == [0, 1]  # Predict folder: the folds' average
    listed = {it.name: it for it in review.items}
    differs = 0  # a model's own mark on a case: its prediction's mean entropy (after 1 epoch all Dice may be 0)
    for fold in (0, 1):
        run = root / f"fold_{fold}"
        own, other = Predictor.load(run), Predictor.load(root / f"fold_{1 - fold}")
        data, _ = load_dataset(TrainConfig.load(run / "config.json").data, own.size)
        held_out = {data.name(int(i)) for i in data.valid_idx}
        assert held_out.isdisjoint(data.name(int(i)) for i in data.train_idx)
        for it in review_items(own, data):  # the fold that did not train on these cases scored them
            shown = listed[it.name]
            assert it.name in held_out and shown.uncertainty == it.uncertainty
            assert np.array_equal(shown.pred, it.pred) and np.array_equal(shown.dice, it.dice, equal_nan=True)
        for it in review_items(other, data):  # the other fold, which trained on them, predicts them otherwise
            differs += listed[it.name].uncertainty != it.uncertainty
    assert differs == n_images
    dice = [it.dice_mean for it in listed.values() if math.isfinite(it.dice_mean)]
    summary = review.summary
    assert summary.n == len(dice) and summary.mean == pytest.approx(np.mean(dice))
    assert summary.low <= summary.mean <= summary.high
    assert [it.dice_mean for it in review.items if math.isfinite(it.dice_mean)] == sorted(dice)  # worst first


@pytest.mark.slow
def test_a_fold_set_of_scans_is_reviewed_with_each_folds_weights_loaded_once_and_the_scans_read_once(
        tmp_path, monkeypatch):
    from dataclasses import replace

    import torch

    from segstudio.config import DataConfig
    from segstudio.data.folds import fold_name
    from segstudio.data.sample_volumes import sample_volumes
    from segstudio.reporting import run_review
    from segstudio.runs import MODEL_FILE
    from tests.model.conftest import write_run

    root = tmp_path / "fs"
    scans = {"axis": "axial", "context": 0, "channels": 1, "modalities": ["CT"]}
    for fold in range(2):
        write_run(root / fold_name(fold), seed=fold, volumes=scans)
    (root / FOLDS_FILE).write_text(json.dumps({"folds": 2, "seed": 0}))
    data = DataConfig(str(sample_volumes(tmp_path / "scans")[0].parent))
    expected = {}  # each scan: what the fold that held it out predicts, on that fold's own split
    for fold in range(2):
        own, _ = load_dataset(replace(data, folds=2, fold=fold), 32)
        expected |= {it.name: it.pred for it in review_items(Predictor.load(root / fold_name(fold)), own)}
    calls = {"weights": 0, "data": 0}
    torch_load, read = torch.load, run_review.load_dataset

    def counted_load(f, *a, **kw):
        calls["weights"] += str(f).endswith(MODEL_FILE)
        return torch_load(f, *a, **kw)

    def counted_read(*a, **kw):
        calls["data"] += 1
        return read(*a, **kw)

    monkeypatch.setattr(torch, "load", counted_load)
    monkeypatch.setattr(run_review, "load_dataset", counted_read)
    review = review_run(root, data=data)
    assert calls == {"weights": 2, "data": 1}
    assert sorted(it.name for it in review.items) == sorted(expected) and len(expected) == 6
    assert all(np.array_equal(it.pred, expected[it.name]) for it in review.items)


def test_mean_interval_is_a_percentile_bootstrap_of_the_mean():
    rng = np.random.default_rng(1)
    values = rng.normal(0.7, 0.1, 400)
    mean, low, high = mean_interval(values)
    assert mean == pytest.approx(values.mean())
    half_t = 1.96 * values.std(ddof=1) / math.sqrt(len(values))  # the normal interval, for scale
    assert low < mean < high and (high - low) / 2 == pytest.approx(half_t, rel=0.1)
    assert mean_interval(values) == (mean, low, high)  # seeded: the same interval each time
    assert mean_interval(np.full(5, 0.5)) == (0.5, 0.5, 0.5)
    one = mean_interval(np.array([0.3]))
    assert one[0] == 0.3 and math.isnan(one[1]) and math.isnan(one[2])
    assert all(math.isnan(v) for v in mean_interval(np.array([])))
    assert DiceSummary(120, 0.8123, 0.78, 0.84).text() == "mean Dice 0.812 (95% CI 0.780–0.840) over 120"


def test_the_folds_scores_merge_into_one_table():
    a = BoundaryScores({"a.png": (0.9, 1.5)}, "px", 1.0)
    b = BoundaryScores({"b.png": (0.7, 4.0)}, "px", 1.0)
    both = merged([a, BoundaryScores(), b])
    assert both.by_case == {"a.png": (0.9, 1.5), "b.png": (0.7, 4.0)} and both.unit == "px"
    assert merged([BoundaryScores(), BoundaryScores()]).by_case == {}


def test_more_folds_than_patients_is_refused_with_the_largest_number_that_works():
    groups = ["patient-1"] * 4 + ["patient-2"] * 3 + ["patient-3"] * 5
    assert fold_refusal(groups, 3) == ""
    refusal = fold_refusal(groups, 5)
    assert "5 folds need at least 5 patients" in refusal and "choose 3 folds or fewer" in refusal


def test_fold_steps_skip_trained_folds_and_an_empty_fold_set_is_discarded(tmp_path):
    root = tmp_path / "fs"
    base, made = start_fold_set(TrainConfig(), 3, root)
    assert made and json.loads((root / FOLDS_FILE).read_text())["folds"] == 3 and base.data.folds == 3
    with pytest.raises(SegstudioError, match="already a fold set"):  # made once; joined only by one fold
        start_fold_set(TrainConfig(), 3, root)
    assert start_fold_set(TrainConfig(), 3, root, fold=2)[1] is False
    with pytest.raises(SegstudioError, match="not 4"):
        start_fold_set(TrainConfig(), 4, root, fold=2)
    step = fold_step(root, 3, base, 1)
    assert (step.fold, step.resume, step.config.data.fold, step.config.out_dir, step.config.run_name) == (
        1, "", 1, str(root), "fold_1")
    run = root / "fold_0"  # a finished fold: its model and its last event
    run.mkdir()
    (run / "model.pth").write_bytes(b"weights")
    (run / "events.jsonl").write_text(to_json(ev.Finished(str(run), 0, 0.5, 1)) + "\n")
    assert fold_step(root, 3, base, 0) is None and trained_folds(root, 3) == (0,)
    assert not discard_if_empty(root, 3) and root.is_dir()  # a trained fold is never removed
    empty = tmp_path / "empty"
    start_fold_set(TrainConfig(), 2, empty)
    assert discard_if_empty(empty, 2) and not empty.exists()
