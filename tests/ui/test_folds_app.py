"""Folds in the Train area: the setting, fold after fold with "Fold i/K" in the progress, Stop
keeping the finished folds, resuming a fold set, and a refusal before anything trains. Sessions
are scripted (no training): each writes what a finished fold leaves (model and last event)."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

from segstudio.data.folds import FOLDS_FILE
from segstudio.training import events as ev
from segstudio.training.event_json import to_json
from segstudio.training.protocols import Session
from tests.conftest import implements

from .conftest import small_train_settings


def started(run_dir: str) -> ev.Started:
    return ev.Started(device="cpu", device_name="CPU", mixed_precision=False, pretrained=False, groups=(),
                      codes=("background", "liver"), n_train=8, n_valid=2, epochs=1, iters_per_epoch=5,
                      run_dir=run_dir, lr_lo=3e-3, lr_hi=3e-3)


@implements(Session)
class FoldSession:
    """Trains fold `config.data.fold` in a blink: a Started, an epoch, a model and a Finished event
    in the fold's run folder; blocks (until cancelled) on the folds in `block`."""

    folds_run: list[int] = []
    configs: list = []  # of the folds that finished
    block: set[int] = set()
    blocked = threading.Event()

    def __init__(self):
        self.stopped = threading.Event()

    def run(self, config, on_event, dataset=None, resume=""):
        fold = config.data.fold
        FoldSession.folds_run.append(fold)
        run = Path(config.out_dir) / config.run_name
        run.mkdir(parents=True, exist_ok=True)
        on_event(started(str(run)))
        if fold in self.block:
            FoldSession.blocked.set()
            self.stopped.wait(30)
            return ev.Cancelled(str(run), 0, math.nan)
        on_event(ev.EpochEnd(0, 1, 0.6, 0.5, (0.99, 0.8), 0.8, 0.1, True))
        final = ev.Finished(str(run), 0, 0.8, 1)
        FoldSession.configs.append(config)
        (run / "model.pth").write_bytes(b"weights")
        (run / "config.json").write_text(config.to_json())
        (run / "split.json").write_text(json.dumps({"train": [], "valid": [f"case{fold}"]}))
        (run / "events.jsonl").write_text(to_json(final) + "\n")
        return final

    def cancel(self):
        self.stopped.set()


def _fold_set(window, monkeypatch, sample_dirs, k: int, block=()):
    """The Train area set for `k` folds of the sample with scripted sessions; the Review's
    loads recorded instead of run."""
    FoldSession.folds_run, FoldSession.block, FoldSession.configs = [], set(block), []
    FoldSession.blocked.clear()
    small_train_settings(window)
    window.data_panel.set_folders(*map(str, sample_dirs))
    panel = window.train_panel
    panel.session_factory = FoldSession
    panel.settings.choice_folds.setValue(k)
    opened = []
    monkeypatch.setattr(window.review_panel, "load_run", lambda run_dir, *a, **kw: opened.append(run_dir) or True)
    return panel, opened


def _messages(window) -> str:
    return "\n".join(m.text for m in window.state.log)


def test_the_folds_setting_is_how_to_train_not_a_run_setting(window):
    s = window.train_panel.settings
    assert s.folds() == 1 and s.choice_folds.text() == "1 (one split)"
    s.choice_folds.setValue(5)
    assert s.folds() == 5 and s.choice_folds.text() == "5 folds"
    s.choice_folds.setValue(50)
    assert s.folds() == 10  # at most 10
    assert s.config().data.folds == 0  # the fold set's folds get theirs from the trainer


def test_a_fold_set_trains_fold_after_fold_and_opens_in_the_review(window, qtbot, monkeypatch, sample_dirs, runs_dir):
    panel, opened = _fold_set(window, monkeypatch, sample_dirs, 3)
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)
    [root] = [p for p in runs_dir.iterdir() if p.name.endswith("3-folds")]
    assert json.loads((root / FOLDS_FILE).read_text())["folds"] == 3
    assert FoldSession.folds_run == [0, 1, 2] and all((root / f"fold_{f}" / "model.pth").is_file() for f in range(3))
    log = panel.text_log.toPlainText()
    assert "Fold 1 of 3" in log and "Fold 3 of 3" in log and "Fold 2/3 · Epoch 1/1" in log
    assert panel.progress_train.format() == "Finished — 3 folds"
    assert "Fold set finished: 3 folds" in _messages(window)
    assert opened == [str(root)] and window.state.run.run_dir == str(root)


def test_stop_ends_the_current_fold_keeps_the_finished_ones_and_resume_trains_the_rest(
        window, qtbot, monkeypatch, sample_dirs, runs_dir):
    panel, opened = _fold_set(window, monkeypatch, sample_dirs, 3, block={1})
    assert panel.start()
    qtbot.waitUntil(FoldSession.blocked.is_set, timeout=20000)
    qtbot.waitUntil(lambda: panel.progress_train.format().startswith("Fold 2/3 · Epoch 1/1"), timeout=5000)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)
    [root] = [p for p in runs_dir.iterdir() if p.name.endswith("3-folds")]
    assert FoldSession.folds_run == [0, 1]  # the third fold never started
    assert (root / "fold_0" / "model.pth").is_file() and not (root / "fold_2").exists()
    assert panel.progress_train.format() == "Stopped"
    assert "Stopped in fold 2 of 3: fold_0 is trained and kept" in _messages(window)
    assert opened == [str(root)]  # the finished fold is reviewed (its cases, out of fold)

    FoldSession.folds_run, FoldSession.block = [], set()
    assert panel.resume(str(root))
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)
    assert FoldSession.folds_run == [1, 2]  # the trained fold is kept as it was
    assert panel.progress_train.format() == "Finished — 3 folds"


def test_more_folds_than_patients_are_refused_before_anything_trains(window, qtbot, monkeypatch, sample_dirs,
                                                                      runs_dir):
    panel, _ = _fold_set(window, monkeypatch, sample_dirs, 7)  # the sample holds 6 patients
    with qtbot.waitSignal(window.data_panel.dataset_loaded, timeout=60000):
        window.data_panel.load()
    qtbot.waitUntil(lambda: not window.data_panel.busy, timeout=10000)
    assert not panel.start()
    assert "7 folds need at least 7 patients" in _messages(window) and "choose 6 folds or fewer" in _messages(window)
    assert FoldSession.folds_run == [] and not list(runs_dir.iterdir())
    panel.settings.choice_folds.setValue(6)
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)
    assert FoldSession.folds_run == list(range(6))


def test_the_review_of_a_fold_set_lists_every_case_out_of_fold_with_its_interval(window):
    from types import SimpleNamespace

    import numpy as np

    from segstudio.inference.review import ReviewItem
    from segstudio.reporting.run_review import RunReview

    def item(i: int, dice: float) -> ReviewItem:
        target = np.zeros((8, 8), np.uint8)
        target[2:6, 2:6] = 1
        return ReviewItem(i, f"case{i}.png", np.zeros((8, 8), np.uint8), target, target, (1.0, dice), dice)

    items = [item(i, d) for i, d in enumerate((0.2, 0.9, 0.6, 0.8))]
    review = RunReview(SimpleNamespace(codes=["background", "liver"]), None, items, folds=(0, 2), missing=(1,))
    panel = window.review_panel
    panel._on_review("/runs/liver-3-folds", None, review)
    assert panel.group_items.title() == "All labelled images, out of fold"
    assert panel.table_review.rowCount() == 4 and panel.table_review.item(0, 1).value == 0.2  # worst first
    s = review.summary
    assert panel.label_summary.isVisibleTo(panel) and panel.label_summary.text() == (
        f"Out of fold (2 folds): mean Dice 0.625 (95% CI {s.low:.3f}–{s.high:.3f}) over 4 images")
    assert "bootstrap" in panel.label_summary.toolTip() and "label errors" in panel.label_summary.toolTip()
    assert "fold_1 of liver-3-folds: no trained model yet" in _messages(window)
    assert panel.button_continue.isEnabled()  # continuing says which folds need training first


def test_continue_training_on_a_fold_set_starts_each_fold_from_its_parent_fold(window, qtbot, monkeypatch,
                                                                              sample_dirs, runs_dir):
    panel, _ = _fold_set(window, monkeypatch, sample_dirs, 2)
    assert panel.start()
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)
    [parent] = [p for p in runs_dir.iterdir() if p.name.endswith("2-folds")]
    FoldSession.folds_run, FoldSession.configs = [], []
    panel.settings.choice_folds.setValue(1)  # the Folds setting does not decide a continued fold set's K
    assert window.continue_training(str(parent))
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)
    assert FoldSession.folds_run == [0, 1]
    assert [c.init_from for c in FoldSession.configs] == [str(parent / "fold_0"), str(parent / "fold_1")]
    assert FoldSession.configs[1].data.fold_of == {"case0": 0, "case1": 1}  # every case in its parent's fold
    assert [p for p in runs_dir.iterdir() if p != parent and (p / FOLDS_FILE).is_file()]

    (parent / "fold_1" / "model.pth").unlink()
    assert not window.continue_training(str(parent))
    assert "fold(s) 1 have no trained model" in _messages(window)
