"""Train area: LR range sliders and chart, a short real training run, Stop, Find LR, closing."""

from __future__ import annotations

import json
import gc
import math
import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLabel

from segstudio.config import Schedule, default_lrs
from segstudio.training import events as ev
from segstudio.training.groups import group_names, lr_plan
from segstudio.training.protocols import LRSession, Session
from segstudio.training.session import TrainingSession
from tests.conftest import implements

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


@implements(Session, LRSession)
class QuickFindLR(TrainingSession):
    """The real session with a shorter LR sweep, to keep the test quick on a CPU."""

    def find_lr(self, config, on_event, dataset=None, num_it=100):
        return super().find_lr(config, on_event, dataset=dataset, num_it=8)


@pytest.mark.slow
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
        assert review.predict_folder(sample_dirs[0], str(out))
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
        assert review.predict_folder(str(sample_dirs[0]), str(sample_dirs[1]))  # the located ground truth
    assert "is the training masks folder" in window.state.message.text
    assert sorted(p.name for p in sample_dirs[1].iterdir()) == before


def test_closing_during_find_lr_asks_about_the_lr_finder(window, qtbot, sample_dirs, monkeypatch):
    import threading

    from PySide6.QtWidgets import QMessageBox

    @implements(LRSession)
    class Sweeping:
        """An LR sweep that goes on until it is stopped."""

        def __init__(self):
            self.stop = threading.Event()

        def find_lr(self, config, on_event, dataset=None, num_it=100):
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    @implements(Session)
    class Exploding:
        def run(self, config, on_event, dataset=None, resume=""):
            raise RuntimeError("boom")

        def cancel(self):
            pass

    window.train_panel.session_factory = Exploding
    panel = _start(window, qtbot, sample_dirs, preload=False)
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert isinstance(panel.last_final, ev.Failed) and "boom" in panel.last_final.message
    assert "boom" in banner(window, "train").text()


@pytest.mark.slow
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


@pytest.mark.slow
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

    @implements(Session)
    class FakeProcessSession:  # the real one is tested in tests/training/test_run_processes.py
        def __init__(self, processes):
            made.append(processes)

        def run(self, config, on_event, dataset=None, resume=""):
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


# -- issue 20: following, status, a continued run's log, plots --------------------------------

def started(**fields) -> ev.Started:
    """A Started event of a small run (fields override)."""
    base = dict(device="cpu", device_name="CPU", mixed_precision=False, pretrained=False, groups=(),
                codes=("background", "liver"), n_train=8, n_valid=2, epochs=3, iters_per_epoch=10,
                run_dir="/runs/child", lr_lo=1e-5, lr_hi=1e-3)
    return ev.Started(**{**base, **fields})


def epoch_end(epoch: int, epochs: int = 3) -> ev.EpochEnd:
    return ev.EpochEnd(epoch=epoch, epochs=epochs, train_loss=0.5, valid_loss=0.6, dice=(0.99, 0.8),
                       dice_mean=0.8, seconds=1.0, is_best=True)


def batch(iteration: int, loss: float = 0.7, total: int = 30) -> ev.BatchEnd:
    return ev.BatchEnd(epoch=iteration // 10, iteration=iteration, total_iterations=total, loss=loss,
                       lrs=(1e-5, 1e-4, 1e-3))


@implements(Session)
class Scripted:
    """A session that emits `events`, then trains until it is stopped."""

    def __init__(self, *events):
        self.events, self.stopped = events, threading.Event()

    def run(self, config, on_event, dataset=None, resume=""):
        for event in self.events:
            on_event(event)
        self.stopped.wait(60)
        return ev.Cancelled("", 0, math.nan)

    def cancel(self):
        self.stopped.set()


def write_followed_run(folder, config, *events):
    """A run folder that another process writes: its config.json and the events so far."""
    from segstudio.training.event_json import to_json

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config.to_json())
    (folder / "events.jsonl").write_text("".join(to_json(e) + "\n" for e in events))
    return folder


def test_following_shows_the_runs_settings_and_stop_leaves_it_running(window, qtbot, tmp_path, monkeypatch):
    from segstudio.config import Arch, TrainConfig

    panel, s = window.train_panel, window.train_panel.settings
    asked = []
    monkeypatch.setattr(window, "confirm_stop_run", lambda: asked.append(1) or True)
    s.value_epochs.setValue(7)
    own = s.config()
    window.state.post("train", "warning", "Finished 8 epochs; best Dice 0.912. Model in /runs/previous")
    theirs = TrainConfig(arch=Arch.resnet50, size=96, epochs=40, bs=2)
    folder = tmp_path / "cluster run"
    run = write_followed_run(folder, theirs, started(epochs=40, run_dir=str(folder)),
                             *(batch(i) for i in range(10)), epoch_end(0, epochs=40))
    assert window.choose_follow(str(run))
    qtbot.waitUntil(lambda: panel.plots.epochs == [1], timeout=30000)
    # its settings, read-only, not the app's; the app's own settings are not replaced by them
    assert (s.value_epochs.value(), s.value_size.value(), s.combo_arch.currentData()) == (40, 96, "resnet50")
    assert not s.value_epochs.isEnabled() and not panel.label_settings_source.isHidden()
    assert "cluster run" in panel.label_settings_source.text()
    assert window.state.train_config.epochs == 7
    assert not shown(banner(window, "train"))  # the previous run's outcome is gone
    assert window.label_state.text() == "Following cluster run"
    panel._on_batches([batch(10, total=400)])  # its pace is its epochs' (1 s for 10 batches), not the replay's
    assert panel.label_eta.text() == "ETA 0:39"
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    text = banner(window, "train").text()
    assert "Stopped following cluster run; the run continues" in text and "Stopped after" not in text
    assert panel.progress_train.format() == "Stopped following"
    assert s.config() == own and s.value_epochs.isEnabled() and panel.label_settings_source.isHidden()
    assert window.state.run is None or window.state.run.run_dir != str(run)  # no model yet: not opened in the Review
    assert window.label_state.text() == "Idle"
    # closing the app while following stops the following without asking to stop "training"
    assert window.choose_follow(str(run))
    qtbot.waitUntil(lambda: panel.plots.epochs == [1], timeout=30000)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=30000)
    assert not asked and not panel.running


def test_a_resumed_run_shows_the_epoch_it_resumes_into_and_its_own_pace(window, monkeypatch):
    import time
    from types import SimpleNamespace

    from segstudio.config import TrainConfig
    from segstudio.ui.panels import train_panel as module

    clock = [100.0]
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: clock[0], strftime=time.strftime,
                                                        localtime=time.localtime))
    panel = window.train_panel
    panel._config = TrainConfig()
    panel._on_started(started(epochs=3, iters_per_epoch=10))
    panel._on_epoch(epoch_end(0))  # the epoch done before the stop, replayed
    assert panel.progress_train.format() == "Epoch 2/3" and panel.progress_train.value() == 10
    clock[0] += 10.0  # this attempt: 5 batches in 10 s, so 15 more take 30 s
    panel._on_batches([batch(i) for i in range(10, 15)])
    assert panel.progress_train.format() == "Epoch 2/3 · batch 5/10"
    assert panel.label_eta.text() == "ETA 0:30"


def test_a_stopped_run_keeps_its_warning_in_view(window, qtbot, sample_dirs):
    note = "ImageNet weights for resnet18 are not in the local cache; training starts from random weights."
    window.train_panel.session_factory = lambda: Scripted(ev.WarningEvent(note), started())
    panel = _start(window, qtbot, sample_dirs, preload=False)
    qtbot.waitUntil(lambda: panel.last_started is not None, timeout=30000)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    text = banner(window, "train").text()
    assert shown(banner(window, "train")) and window.state.message.level == "warning"  # stays until closed
    assert "Stopped after 0 epoch(s)" in text and note in text


def test_a_continued_run_says_it_starts_from_its_parent(window, qtbot, sample_dirs):
    window.train_panel.session_factory = lambda: Scripted(started(parent_run="/runs/20261204-133925"))
    panel = _start(window, qtbot, sample_dirs, preload=False)
    qtbot.waitUntil(lambda: panel.last_started is not None, timeout=30000)
    panel.stop()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    log = panel.text_log.toPlainText()
    assert "starting from the weights of 20261204-133925" in log and "random-init" not in log


GROUPS = tuple(ev.GroupInfo(name, 1000, 1e-3, False) for name in
               ("encoder: stem, layer1", "encoder: layer2, layer3, layer4", "decoder: head"))


def live_plots(window, qtbot, **fields):
    """The Train area's plots after a run of `fields` started, laid out on screen."""
    panel = window.train_panel
    panel._config = panel.settings.config()
    panel._on_started(started(groups=GROUPS, **fields))
    window.tabs.setCurrentWidget(panel)
    qtbot.wait(20)
    return panel.plots


def test_the_first_batch_gets_the_runs_axes(window, qtbot):
    plots = live_plots(window, qtbot, iters_per_epoch=40, epochs=8)
    plots.add_batches([ev.BatchEnd(0, 0, 320, 0.6931471805599453, (1e-5, 1e-4, 1e-3))])
    plots.flush()
    (x0, x1), (y0, y1) = plots.plot_loss.getPlotItem().vb.viewRange()
    assert x0 <= 0 < 300 < x1 <= 340  # the whole run from its start, not -400…400
    assert y0 < 0.6931 < y1 and y1 - y0 >= 0.05  # a readable span, not 16 digits
    assert plots.plot_lr.getPlotItem().vb.viewRange()[0] == [x0, x1]


def test_the_loss_axis_leaves_out_the_first_spike_unless_all_is_shown(window, qtbot):
    plots = live_plots(window, qtbot, iters_per_epoch=20, epochs=3)
    rng = np.random.default_rng(0)
    losses = [1.0 + 0.1 * rng.standard_normal() for _ in range(60)]
    losses[2:4] = [12.0, 9.0]  # the first batches' spike
    plots.add_batches([batch(i, loss, 60) for i, loss in enumerate(losses)])
    plots.add_epoch(ev.EpochEnd(0, 3, 1.0, 2.8, (0.9, 0.3), 0.3, 1.0, True))  # a high first validation loss
    plots.flush()
    qtbot.wait(20)  # drawn (an automatic range is set when the plot is painted)
    y0, y1 = plots.plot_loss.getPlotItem().vb.viewRange()[1]
    assert 2.8 < y1 < 5 and y0 < 0.9  # validation and the batches in view, the spike off the top
    show_all = plots.findChild(QCheckBox, "bool_loss_show_all")
    show_all.setChecked(True)
    assert plots.plot_loss.getPlotItem().vb.viewRange()[1][1] >= 12.0


def test_lr_tick_labels_are_distinct_for_a_constant_lr(window, qtbot):
    plots = live_plots(window, qtbot, iters_per_epoch=10, epochs=1)
    plots.add_batches([ev.BatchEnd(0, i, 10, 0.7, (1e-3, 1e-3, 1e-3)) for i in range(4)])
    plots.flush()
    qtbot.wait(20)
    axis = plots.plot_lr.getPlotItem().getAxis("left")
    lo, hi = plots.plot_lr.getPlotItem().vb.viewRange()[1]
    labels = [label for spacing, values in axis.tickValues(lo, hi, axis.height())
              for label in axis.tickStrings(values, 1.0, spacing)]
    assert "1e-3" in labels and len(labels) >= 3 and len(set(labels)) == len(labels), labels


def test_a_2d_run_opened_after_a_3d_run_has_2d_titles_and_legends_below(window, qtbot, tmp_path):
    import json

    from segstudio.ui.state import RunRef

    panel = window.train_panel
    panel._config = panel.settings.config()
    panel._on_started(started(volumetric=True))
    assert "3-D" in panel.plots.plot_dice.getPlotItem().titleLabel.text
    run = tmp_path / "2d run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps([{"epoch": 1, "train_loss": 0.9, "valid_loss": 1.0,
                                                   "dice_mean": 0.5, "dice_liver": 0.5}]))
    (run / "model.json").write_text(json.dumps({"codes": ["background", "liver"]}))
    window.state.run = RunRef(str(run))
    window.tabs.setCurrentWidget(panel)
    qtbot.wait(50)  # laid out
    item = panel.plots.plot_dice.getPlotItem()
    assert "3-D" not in item.titleLabel.text
    assert item.legend.parentItem() is not item.vb  # the legends sit under the plots, not on the curves
    assert not item.legend.sceneBoundingRect().intersects(item.vb.sceneBoundingRect())
