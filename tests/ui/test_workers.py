"""Workers, the task runner and the app state, driven by scripted fakes: milliseconds, no training."""

import gc
import math
import os
import sys
import threading

import numpy as np
import pytest
from PySide6.QtWidgets import QProgressBar, QWidget

from segstudio.config import TrainConfig
from segstudio.errors import DataError
from segstudio.training import events as ev
from segstudio.training.protocols import Session
from segstudio.ui.state import AppState, RunRef
from segstudio.ui.tasks import TaskRunner, progress_text
from segstudio.workers import TaskWorker, TrainWorker
from tests.conftest import implements


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux-only")
def test_task_worker_thread_is_niced(qtbot):
    seen = {}

    def fn(progress, should_stop):
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return 1

    worker = TaskWorker(fn, "nice")
    with qtbot.waitSignal(worker.result, timeout=10000):
        worker.start()
    worker.wait(5000)
    gui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen["nice"] > gui or seen["nice"] == 19


STARTED = ev.Started(device="cpu", device_name="CPU", mixed_precision=False, pretrained=False, groups=(),
                     codes=("background", "liver"), n_train=8, n_valid=2, epochs=1, iters_per_epoch=5,
                     run_dir="/runs/x", lr_lo=3e-3, lr_hi=3e-3)


@implements(Session)
class ScriptedSession:
    """Emits a fixed event sequence, as TrainingSession.run does, and returns its final event."""

    script = [ev.Progress(0, 10, "Reading a.png"), ev.Progress(10, 10, "Checking masks"), STARTED,
              ev.PhaseChanged("unfrozen", ()),
              *[ev.BatchEnd(0, i, 5, 1.0 - i / 10, (3e-3,)) for i in range(5)],
              ev.EpochEnd(0, 1, 0.6, 0.5, (0.99, 0.8), 0.8, 1.5, True),
              ev.Preview(0, ("a",), (np.zeros((4, 4), np.uint8),), (np.zeros((4, 4), np.uint8),),
                         (np.zeros((4, 4), np.uint8),)),
              ev.WarningEvent("careful")]

    def __init__(self):
        self.stopped = threading.Event()

    def run(self, config, on_event, dataset=None, resume=""):
        for event in self.script:
            on_event(event)
        return ev.Finished("/runs/x", 0, 0.8, 1)

    def cancel(self):
        self.stopped.set()


@implements(Session)
class BlockingSession(ScriptedSession):
    def run(self, config, on_event, dataset=None, resume=""):
        on_event(STARTED)
        self.stopped.wait(10)
        return ev.Cancelled("", 0, math.nan)


def record(worker):
    seen = {name: [] for name in ("progress", "run_started", "phase_changed", "batches", "epoch_ended",
                                  "preview", "warning", "result")}
    for name, values in seen.items():
        getattr(worker, name).connect(lambda *args, values=values: values.append(args))
    return seen


def test_train_worker_routes_every_event_to_its_signal(qtbot):
    worker = TrainWorker(TrainConfig(), session_factory=ScriptedSession, batch_interval=10.0)
    seen = record(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert seen["progress"] == [(0, 10, "Reading a.png"), (10, 10, "Checking masks")]
    assert seen["run_started"] == [(STARTED,)] and seen["phase_changed"][0][0].name == "unfrozen"
    assert [len(b[0]) for b in seen["batches"]] == [5]  # coalesced into one list
    assert seen["epoch_ended"][0][0].dice_mean == 0.8 and len(seen["preview"]) == 1
    assert seen["warning"] == [("careful",)]
    assert seen["result"] == [(ev.Finished("/runs/x", 0, 0.8, 1),)]
    assert gc.get_freeze_count() == 0  # what the run froze is handed back


def test_a_stopped_run_still_ends_with_its_final_event(qtbot):
    worker = TrainWorker(TrainConfig(), session_factory=BlockingSession)
    seen = record(worker)
    with qtbot.waitSignal(worker.run_started, timeout=5000):
        worker.start()
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.stop()
    assert [type(r[0]) for r in seen["result"]] == [ev.Cancelled]


def test_an_exception_in_the_session_becomes_a_failed_event(qtbot):
    @implements(Session)
    class Broken(ScriptedSession):
        def run(self, config, on_event, dataset=None, resume=""):
            raise RuntimeError("kaboom")

    worker = TrainWorker(TrainConfig(), session_factory=Broken)
    seen = record(worker)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    [(final,)] = seen["result"]
    assert isinstance(final, ev.Failed) and "kaboom" in final.message


@pytest.fixture
def runner(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    bar = QProgressBar(parent)
    errors = []
    r = TaskRunner(parent, "test", bar, on_error=lambda m, d: errors.append(m))
    r.errors = errors
    yield r
    del parent  # kept alive (it owns the runner) until the test is over


def test_runner_passes_arguments_and_delivers_the_result(runner, qtbot):
    def add(a, b, *, progress, should_stop):
        progress(1, 2, "adding")
        return a + b

    got = []
    with qtbot.waitSignal(runner.busy_changed, timeout=5000, check_params_cb=lambda b: not b):
        assert runner.start(add, 2, 3, on_done=got.append)
        assert not runner.start(add, 1, 1, on_done=got.append)  # one task at a time
    assert got == [5] and not runner.busy


def test_runner_reports_errors_and_cancel(runner, qtbot):
    def fail(*, progress, should_stop):
        raise DataError("Images folder not found: /x")

    with qtbot.waitSignal(runner.busy_changed, timeout=5000, check_params_cb=lambda b: not b):
        runner.start(fail, on_done=lambda r: None)
    assert runner.errors == ["Images folder not found: /x"] and runner.bar.format() == "Failed"
    release = threading.Event()

    def slow(*, progress, should_stop):
        release.wait(5)
        return 1

    cancelled = []
    runner.start(slow, on_done=lambda r: None, on_cancelled=lambda: cancelled.append(1))
    runner.cancel()
    release.set()
    qtbot.waitUntil(lambda: not runner.busy, timeout=5000)
    assert cancelled == [1] and runner.bar.format() == "Cancelled"


def test_progress_text_counts_and_estimates():
    assert progress_text(0, 0, "Listing files") == "Listing files"
    assert progress_text(3, 10, "LR sweep", elapsed=0.5) == "LR sweep — 3/10"
    assert progress_text(3, 10, "LR sweep", elapsed=6.0) == "LR sweep — 3/10 · 0:14 left"


def test_state_announces_changes_once():
    state, seen = AppState(), []
    stop = state.watch("run", seen.append)
    state.run = RunRef("/runs/a")
    state.run = RunRef("/runs/a")  # equal: no news
    state.run = RunRef("/runs/b")
    stop()
    state.run = RunRef("/runs/c")
    assert [r.run_dir for r in seen] == ["/runs/a", "/runs/b"]
    state.post("data", "warning", "x")
    assert state.message.area == "data" and state.log[-1].text == "x"
