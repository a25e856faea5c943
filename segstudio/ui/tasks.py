"""One lifecycle for work off the GUI thread, and one way to show its progress.

In the spirit of Orange3's ConcurrentWidgetMixin: a panel says what to run (`start(fn, *args)`)
and what to do with the result (`on_done`); the runner owns the thread, throttled progress with a
time estimate, cancel, errors and clean-up. `fn(*args, progress=..., should_stop=...)` runs in a
TaskWorker thread; `start_worker` takes a ready worker (the training worker) instead.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtWidgets import QProgressBar

from segstudio.workers import TaskWorker

ETA_AFTER_S = 2.0  # a time estimate once a task has run this long


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress_text(done: int, total: int, message: str, elapsed: float = 0.0) -> str:
    """"Message — 3/10 · 0:12 left" (the count when the total is known, an estimate once
    `elapsed` is long enough to judge); "Message · 1:05 elapsed" when the total is unknown."""
    if total <= 0:
        text = message or "Working…"
        return f"{text} · {fmt_duration(elapsed)} elapsed" if elapsed >= ETA_AFTER_S else text
    text = f"{message or 'Working'} — {done}/{total}"
    if 0 < done < total and elapsed >= ETA_AFTER_S:
        text += f" · {fmt_duration(elapsed / done * (total - done))} left"
    return text


def show_progress(bar: QProgressBar, done: int, total: int, text: str) -> None:
    """A determinate bar when the total is known, else an empty one: Qt's busy indicator would
    hide the text (QProgressBar.text() is empty in busy mode), and the text says what runs."""
    bar.setRange(0, max(total, 1))
    bar.setValue(min(done, total) if total > 0 else 0)
    bar.setFormat(text)


def show_state(bar: QProgressBar, text: str, full: bool = False) -> None:
    """An idle bar: full (done) or empty, with a word on what happened."""
    bar.setRange(0, 1)
    bar.setValue(1 if full else 0)
    bar.setFormat(text)


class TaskRunner(QObject):
    """Runs one task at a time for a panel and reports it on the panel's progress bar; `label`
    says what runs ("" when idle), for the status bar."""

    busy_changed = Signal(bool)

    def __init__(self, parent: QObject, name: str, bar: QProgressBar | None = None,
                 on_error: Callable[[str, str], None] | None = None):
        super().__init__(parent)
        self.setObjectName(f"runner_{name}")
        self.name, self.bar, self.on_error = name, bar, on_error
        self.worker: TaskWorker | None = None
        self.label = ""
        self._shown = (0, 0, "")  # the last progress (done, total, message)
        self._drawn = ""  # its text on the bar: a bar that says something else since is left alone
        self._ticker = QTimer(self, interval=1000)
        self._ticker.timeout.connect(self._tick)
        self._on_done: Callable[[Any], None] | None = None
        self._on_cancelled: Callable[[], None] | None = None
        self._task_error: Callable[[str, str], None] | None = None
        self._t0 = 0.0

    @property
    def busy(self) -> bool:
        return self.worker is not None

    @property
    def running(self) -> bool:
        """The thread itself still runs (`busy` lasts until its end has been handled)."""
        return self.worker is not None and self.worker.isRunning()

    def start(self, fn: Callable, *args, on_done: Callable[[Any], None], label: str = "Working…",
              on_cancelled: Callable[[], None] | None = None,
              on_error: Callable[[str, str], None] | None = None) -> bool:
        """Run `fn(*args, progress=, should_stop=)` in a thread; False when a task already runs.
        `on_error` replaces the runner's error handler for this task."""
        if self.worker is not None:
            return False

        def task(progress, should_stop):
            return fn(*args, progress=progress, should_stop=should_stop)
        return self.start_worker(TaskWorker(task, self.name), on_done, label, on_cancelled, on_error)

    def start_worker(self, worker: TaskWorker, on_done: Callable[[Any], None], label: str = "Working…",
                     on_cancelled: Callable[[], None] | None = None,
                     on_error: Callable[[str, str], None] | None = None) -> bool:
        if self.worker is not None:
            return False
        self._task_error = on_error
        worker.setParent(self)
        worker.progress.connect(self._on_progress)
        worker.result.connect(self._on_result)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancel)
        worker.finished.connect(self._on_finished)
        self.worker, self._on_done, self._on_cancelled = worker, on_done, on_cancelled
        self.label = label
        self._t0 = time.monotonic()
        if self.bar is not None:
            self._shown = (0, 0, label)
            self._redraw()
            self._ticker.start()
        self.busy_changed.emit(True)
        worker.start()
        return True

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            if self.bar is not None:
                self.bar.setFormat("Cancelling…")

    def wait(self, ms: int = 60000) -> bool:
        """Ask the task to stop and wait for its thread (the window is closing)."""
        if self.worker is None:
            return True
        self.worker.stop()
        return self.worker.wait(ms)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, message: str) -> None:
        self._shown = (done, total, message)
        self._redraw()

    def _redraw(self) -> None:
        if self.bar is not None:
            done, total, message = self._shown
            self._drawn = progress_text(done, total, message, time.monotonic() - self._t0)
            show_progress(self.bar, done, total, self._drawn)

    @Slot()
    def _tick(self) -> None:
        """The elapsed time of a task without a known total (nothing else tells that it runs)."""
        if self.bar is not None and self._shown[1] <= 0 and self.bar.format() == self._drawn:
            self._redraw()

    @Slot(object)
    def _on_result(self, result) -> None:
        if self._on_done is not None:
            self._on_done(result)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        if self.bar is not None:
            show_state(self.bar, "Failed")
        handler = self._task_error or self.on_error
        if handler is not None:
            handler(message, details)

    @Slot()
    def _on_cancel(self) -> None:
        if self.bar is not None:
            show_state(self.bar, "Cancelled")
        if self._on_cancelled is not None:
            self._on_cancelled()

    @Slot()
    def _on_finished(self) -> None:
        self._ticker.stop()
        self.label = ""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.deleteLater()
        self.busy_changed.emit(False)
