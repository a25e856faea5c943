"""Train area: LR range sliders and chart, a short real training run, Stop, Find LR, closing."""

from __future__ import annotations

import json
import gc
import math

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from segstudio.config import Schedule, default_lrs
from segstudio.training import events as ev
from segstudio.training.groups import group_names, lr_plan
from segstudio.training.session import TrainingSession

from .conftest import small_train_settings


def test_lr_slider_sets_config_and_group_chart(window, qtbot):
    s = window.train_panel.settings
    s.slider_lr.setValue((-4.0, -2.0))
    cfg = s.config()
    assert (cfg.lr_lo, cfg.lr_hi) == (1e-4, 1e-2)
    assert s.value_lr_lo.text() == "1.0e-04" and s.value_lr_hi.text() == "1.0e-02"
    assert s.chart_lr.names == group_names(cfg.arch.value)
    assert np.allclose(s.chart_lr.values, lr_plan(1e-4, 1e-2))
    heights = s.chart_lr.bars.opts["height"]
    assert np.allclose(np.asarray(heights) + s.chart_lr.Y0, np.log10(lr_plan(1e-4, 1e-2)))
    # typing a number moves the handle
    s.value_lr_hi.setText("3e-3")
    s.value_lr_hi.editingFinished.emit()
    assert s.config().lr_hi == 3e-3
    assert math.isclose(s.slider_lr.value()[1], math.log10(3e-3), abs_tol=1e-6)
    assert np.allclose(s.chart_lr.values, lr_plan(1e-4, 3e-3))
    # a value beyond the range is clamped, and the user is told
    s.value_lr_hi.setText("1.0")
    s.value_lr_hi.editingFinished.emit()
    assert s.config().lr_hi == 0.1
    assert "set to the nearest" in window.train_panel.text_log.toPlainText()


def test_lr_defaults_follow_pretrained(window):
    s = window.train_panel.settings
    s.set_weights_available({"resnet18": True, "resnet34": True, "resnet50": True})
    s.bool_pretrained.setChecked(True)
    s.reset_lrs()
    assert s.lrs() == default_lrs(True)
    s.bool_pretrained.setChecked(False)
    assert s.lrs() == default_lrs(False)
    s.bool_pretrained.setChecked(True)
    assert s.lrs() == default_lrs(True)
    # weights missing offline -> random init defaults and a visible note
    s.set_weights_available({"resnet18": False, "resnet34": False, "resnet50": False})
    s.reset_lrs()
    assert s.lrs() == default_lrs(False)
    assert not s.label_pretrained_note.isHidden() and "random" in s.label_pretrained_note.text()
    # SGD (poly) takes larger steps: untouched LRs follow the schedule, a chosen range stays
    s.combo_schedule.setCurrentIndex(s.combo_schedule.findData(Schedule.poly.value))
    assert s.lrs() == default_lrs(False, Schedule.poly) and s.config().schedule == Schedule.poly
    s.set_lrs(2e-3, 5e-3)
    s.combo_schedule.setCurrentIndex(s.combo_schedule.findData(Schedule.one_cycle.value))
    assert s.lrs() == (2e-3, 5e-3)


def _start(window, qtbot, sample_dirs, mode="train", preload=True, **kw):
    """Set a tiny config, load the sample data in the Data panel (so the run reuses it), start."""
    images, masks = sample_dirs
    small_train_settings(window, **kw)
    window.data_panel.set_folders(images, masks)
    if preload:
        with qtbot.waitSignal(window.data_panel.dataset_loaded, timeout=60000):
            window.data_panel.load()
        qtbot.waitUntil(lambda: not window.data_panel.busy, timeout=10000)
    panel = window.train_panel
    assert panel.start(mode)
    return panel


class QuickFindLR(TrainingSession):
    """The real session with a shorter LR sweep, to keep the test quick on a CPU."""

    def find_lr(self, config, on_event, dataset=None, num_it=100):
        return super().find_lr(config, on_event, dataset=dataset, num_it=8)


def test_short_training_fills_plots_review_and_export(window, qtbot, sample_dirs, tmp_path):
    panel = _start(window, qtbot, sample_dirs, epochs=1, size=32, bs=16)
    assert not panel.settings.combo_arch.isEnabled() and not panel.settings.slider_lr.isEnabled() and not panel.button_train.isEnabled()
    assert panel.button_stop.isEnabled() and not window.data_panel.isEnabled()
    with qtbot.waitSignal(window.review_panel.runner.busy_changed, timeout=120000,
                          check_params_cb=lambda busy: not busy):
        pass
    qtbot.waitUntil(lambda: not panel.running, timeout=10000)
    assert isinstance(panel.last_final, ev.Finished), panel.last_final
    assert gc.get_freeze_count() == 0  # the worker unfroze what it froze during the run
    plots = panel.plots
    plots.flush()
    n = len(plots.it)
    assert n == panel.last_started.iters_per_epoch > 0
    assert len(plots.c_raw.getData()[0]) == n and len(plots.c_smooth.getData()[0]) == n
    assert len(plots.c_valid.getData()[0]) == 1 and len(plots.c_dice_mean.getData()[0]) == 1
    assert len(plots.c_lr) == 3 and len(plots.c_lr[2].getData()[0]) == n
    assert len(plots.c_dice) == 2  # liver, kidney
    assert plots.redraws <= 3 + n  # throttled
    assert panel.preview.epoch == 0 and panel.preview.tiles[0].pixmap() is not None
    assert not panel.preview.tiles[0].pixmap().isNull()
    assert panel.settings.combo_arch.isEnabled() and panel.settings.slider_lr.isEnabled() and panel.button_train.isEnabled() and window.data_panel.isEnabled()
    assert "Finished" in panel.progress_train.format()
    # the finished run is reviewed: all validation images, worst first
    review = window.review_panel
    assert review.table_review.rowCount() == len(window.data_panel.dataset.valid_idx) > 0
    dice = [review.table_review.item(r, 1).value for r in range(review.table_review.rowCount())]
    finite = [d for d in dice if math.isfinite(d)]
    assert finite == sorted(finite)
    assert review.button_predict.isEnabled()
    # predict a folder and export PNG masks (File > Export masks does the same)
    out = tmp_path / "exported"
    with qtbot.waitSignal(review.runner.busy_changed, timeout=120000, check_params_cb=lambda b: not b):
        assert review.export_masks(sample_dirs[0], str(out))
    assert len(list(out.glob("*.png"))) >= 40
    assert "Wrote" in review.progress_review.format()
    assert review.group_items.title() == "Predicted images (no ground truth)"  # the results, viewable
    assert review.table_review.rowCount() == 40 and review.viewer.item.target is None
    assert not review.viewer.bool_compare.isEnabled()
    # File > Open run: the run alone (no dataset in memory) is enough to review it
    run_dir = panel.last_final.run_dir
    with qtbot.waitSignal(review.runner.busy_changed, timeout=120000, check_params_cb=lambda b: not b):
        assert review.load_run(run_dir, None)
    assert review.table_review.rowCount() == len(window.data_panel.dataset.valid_idx)


def test_a_run_whose_data_moved_opens_and_predicts(window, qtbot, trained_run, sample_dirs, tmp_path):
    """Its model, metrics and plots are usable; 'Locate data…' computes the review."""
    import json
    import shutil

    from segstudio.ui.state import RunRef

    moved = tmp_path / "run"
    shutil.copytree(trained_run[0].run_dir, moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"].update(images=str(tmp_path / "gone" / "images"), masks=str(tmp_path / "gone" / "masks"))
    (moved / "config.json").write_text(json.dumps(config))
    review = window.review_panel
    with qtbot.waitSignal(review.runner.busy_changed, timeout=120000, check_params_cb=lambda b: not b):
        window.state.run = RunRef(str(moved))
    assert review.run_dir == str(moved) and review.predictor is not None
    assert review.button_predict.isEnabled() and review.table_review.rowCount() == 0
    message = window.state.message
    assert message.area == "review" and "Images folder not found" in message.text
    assert message.action[0] == "Locate data…"
    plots = window.train_panel.plots  # the run's epochs, from its metrics.json
    assert len(plots.dice_mean) == len(json.loads((moved / "metrics.json").read_text())) > 0
    with qtbot.waitSignal(review.runner.busy_changed, timeout=120000, check_params_cb=lambda b: not b):
        assert review.locate_data(*map(str, sample_dirs))
    assert review.table_review.rowCount() > 0 and review.dataset is not None
    before = sorted(p.name for p in sample_dirs[1].iterdir())
    with qtbot.waitSignal(review.runner.busy_changed, timeout=120000, check_params_cb=lambda b: not b):
        assert review.export_masks(str(sample_dirs[0]), str(sample_dirs[1]))  # the located ground truth
    assert "is the training masks folder" in window.state.message.text
    assert sorted(p.name for p in sample_dirs[1].iterdir()) == before


def test_closing_during_find_lr_asks_about_the_lr_finder(window, qtbot, sample_dirs, monkeypatch):
    import threading

    from PySide6.QtWidgets import QMessageBox

    class Sweeping:
        """An LR sweep that goes on until it is stopped."""

        def __init__(self):
            self.stop = threading.Event()

        def find_lr(self, config, on_event, dataset=None):
            self.stop.wait(60)
            return ev.Cancelled("", 0, math.nan)

        def cancel(self):
            self.stop.set()

    window.train_panel.session_factory = Sweeping
    panel = _start(window, qtbot, sample_dirs, mode="find_lr", preload=False)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: asked.append(title)
                        or QMessageBox.StandardButton.Yes)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30000)
    assert asked == ["Stop the LR finder?"] and not panel.running


def test_stop_ends_run_mid_epoch(window, qtbot, sample_dirs):
    panel = _start(window, qtbot, sample_dirs, epochs=3, size=64, bs=4)
    qtbot.waitSignal(panel.runner.worker.batches, timeout=120000).wait()
    qtbot.mouseClick(panel.button_stop, Qt.MouseButton.LeftButton)
    assert not panel.button_stop.isEnabled()
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    final = panel.last_final
    assert isinstance(final, ev.Cancelled), final
    assert final.epochs_done == 0
    total = panel.last_started.epochs * panel.last_started.iters_per_epoch
    assert 0 < len(panel.plots.it) < panel.last_started.iters_per_epoch < total
    assert panel.progress_train.format() == "Stopped"
    assert panel.button_train.isEnabled()


def test_close_during_run_asks_then_stops(window, qtbot, sample_dirs, monkeypatch):
    panel = _start(window, qtbot, sample_dirs, preload=False, epochs=5, size=64, bs=4)
    qtbot.waitSignal(panel.runner.worker.batches, timeout=120000).wait()
    asked = []
    monkeypatch.setattr(window, "confirm_stop_run", lambda: asked.append(1) or False)
    assert window.close() is False  # "No": keep running
    assert panel.running and asked == [1]
    monkeypatch.setattr(window, "confirm_stop_run", lambda: asked.append(2) or True)
    window.close()
    assert asked == [1, 2]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60000)
    assert not panel.running and isinstance(panel.last_final, ev.Cancelled)


def banner(window, area):
    return window.findChild(QLabel, f"label_message_{area}")


def shown(label) -> bool:
    return not label.parentWidget().isHidden()  # the banner is shown (its tab may be in the back)


def test_failure_is_shown_in_the_train_area_and_app_survives(window, qtbot, tmp_path):
    window.data_panel.set_folders(tmp_path / "nope_images", tmp_path / "nope_masks")
    small_train_settings(window)
    panel = window.train_panel
    assert panel.start("train")
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert isinstance(panel.last_final, ev.Failed)
    assert shown(banner(window, "train")) and "not found" in banner(window, "train").text()
    assert not shown(banner(window, "data"))  # each area shows its own messages
    assert "✖" in panel.text_log.toPlainText()  # and the log keeps them
    assert panel.button_train.isEnabled()


def test_worker_turns_exceptions_into_failed(window, qtbot, sample_dirs, monkeypatch):
    class Exploding:
        def run(self, *a, **k):
            raise RuntimeError("boom")

        def cancel(self):
            pass

    window.train_panel.session_factory = Exploding
    panel = _start(window, qtbot, sample_dirs, preload=False)
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert isinstance(panel.last_final, ev.Failed) and "boom" in panel.last_final.message
    assert "boom" in banner(window, "train").text()


def test_find_lr_plots_and_applies(window, qtbot, sample_dirs):
    window.train_panel.session_factory = QuickFindLR
    panel = _start(window, qtbot, sample_dirs, mode="find_lr", size=32, bs=4)
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    found = panel.last_final
    assert isinstance(found, ev.LRFound), found
    xs, ys = panel.lr_finder.curve.getData()
    assert len(xs) > 5 and panel.lr_finder.region.isVisible()
    assert np.allclose(10 ** xs, panel.lr_finder.lrs)  # plotted on a log10 axis
    assert panel.settings.tabs_lr.currentWidget() is panel.lr_finder
    assert panel.button_apply_lr.isEnabled()
    qtbot.mouseClick(panel.button_apply_lr, Qt.MouseButton.LeftButton)
    lo, hi = panel.settings.lrs()
    clamp = lambda x: min(max(x, 1e-6), 1e-1)  # noqa: E731  (the slider's range)
    assert lo == pytest.approx(clamp(found.suggested_lo), rel=0.06)
    assert hi == pytest.approx(clamp(found.suggested_hi), rel=0.06)


def test_log_axis_labels_stay_distinct():
    from segstudio.ui.panels.plots import log_tick_labels

    assert log_tick_labels([-3, -2]) == ["1e-3", "1e-2"]
    close = [math.log10(x) for x in (1e-3, 1.5e-3, 2e-3, 2.5e-3)]
    labels = log_tick_labels(close)
    assert len(set(labels)) == 4 and labels[1] == "1.5e-3"


def test_a_single_point_is_drawn_as_a_dot(qtbot):
    from segstudio.ui.panels.plots import LivePlots

    plots = LivePlots()
    qtbot.addWidget(plots)
    plots.reset(("background", "liver"), ("a", "b", "c"))
    batch = ev.BatchEnd(epoch=0, iteration=0, total_iterations=1, loss=1.0, lrs=(1e-3, 1e-3, 1e-3))
    plots.add_batches([batch])
    plots.flush()
    assert plots.c_smooth.opts["symbol"] == "o" and plots.c_lr[0].opts["symbol"] == "o"
    plots.add_batches([ev.BatchEnd(epoch=0, iteration=1, total_iterations=2, loss=0.9, lrs=(1e-3,) * 3)])
    plots.flush()
    assert plots.c_smooth.opts["symbol"] is None


def test_resume_continues_a_stopped_run_in_its_folder(window, qtbot, sample_dirs):
    from pathlib import Path

    panel = _start(window, qtbot, sample_dirs, epochs=3, size=32, bs=8)
    qtbot.waitUntil(lambda: panel.last_started is not None, timeout=60000)
    run_dir = Path(panel.last_started.run_dir)
    qtbot.waitUntil(lambda: (run_dir / "checkpoint.pth").is_file(), timeout=60000)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert isinstance(panel.last_final, ev.Cancelled)
    assert window.choose_resume(str(run_dir))
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    assert isinstance(panel.last_final, ev.Finished) and panel.last_final.run_dir == str(run_dir)
    panel.plots.flush()
    assert panel.plots.epochs == [1, 2, 3]  # the epochs before the stop replayed, each once
    assert [r["epoch"] for r in json.loads((run_dir / "metrics.json").read_text())] == [1, 2, 3]


def test_following_a_run_shows_it_like_one_trained_here(window, qtbot, trained_run):
    final, events = trained_run
    panel = window.train_panel
    assert window.choose_follow(final.run_dir)
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert isinstance(panel.last_final, ev.Finished) and panel.last_final.run_dir == final.run_dir
    panel.plots.flush()
    assert panel.plots.epochs == [e.epoch + 1 for e in events if isinstance(e, ev.EpochEnd)]
    assert window.state.run is not None and window.state.run.run_dir == final.run_dir  # the Review opens it


def test_a_folder_without_an_event_log_cannot_be_followed(window, tmp_path):
    assert not window.choose_follow(str(tmp_path))
    assert "no events.jsonl" in window.state.log[-1].text


def test_run_in_a_separate_process_uses_a_process_session(window, qtbot, sample_dirs, monkeypatch):
    from segstudio.training import process_session

    made = []

    class FakeProcessSession:  # the real one is tested in tests/core/test_run_processes.py
        def __init__(self, processes):
            made.append(processes)

        def run(self, config, on_event, dataset=None):
            made.append(dataset)
            return ev.Finished(run_dir="", best_epoch=0, best_dice=0.5, epochs_done=1)

        def cancel(self):
            pass
    monkeypatch.setattr(process_session, "ProcessSession", FakeProcessSession)
    settings = window.train_panel.settings
    settings.choice_processes.setCurrentIndex(settings.choice_processes.findData(2))
    panel = _start(window, qtbot, sample_dirs, preload=False)
    qtbot.waitUntil(lambda: not panel.running, timeout=60000)
    assert made == [2, None]  # torchrun with two processes; the child loads the data itself
    assert isinstance(panel.last_final, ev.Finished)
