"""A run's events as a file: rank 0 appends each event's JSON line to the run folder's
events.jsonl, so that any process that can read the folder (the app on a shared file system,
a copy brought back from a cluster) can follow the run with the same panels (FollowSession),
and tell a finished run by its last event (finished_event)."""

from __future__ import annotations

import time
from pathlib import Path

from . import events as ev
from .event_json import from_json, to_json

EVENTS = "events.jsonl"
FLUSH_S = 1.0  # batch events reach the file at least this often
PENDING = 200  # events kept before the run folder exists (loading progress, warnings)
TERMINAL = (ev.Finished, ev.Cancelled, ev.Failed)
TAIL = 1 << 16  # the end of events.jsonl read for the run's last event (its last lines are short)


class EventLog:
    """Callable event sink; events before `open` are kept and written when it is called. A write
    that fails (a full disk) turns the log off: the run's own files report that problem."""

    def __init__(self):
        self._file = None
        self._pending: list[str] = []
        self._closed = False
        self._flushed = 0.0

    def __call__(self, event) -> None:
        if self._closed or isinstance(event, ev.Progress):
            return
        line = to_json(event) + "\n"
        if self._file is None:
            self._pending = (self._pending + [line])[-PENDING:]
            return
        try:
            self._file.write(line)
            now = time.monotonic()
            if not isinstance(event, ev.BatchEnd) or now - self._flushed > FLUSH_S:
                self._file.flush()
                self._flushed = now
        except OSError:
            self.close()

    def open(self, run_dir: Path) -> None:
        """Start writing to `run_dir`/events.jsonl (appending: a resumed run continues it)."""
        if self._closed or self._file is not None:
            return
        try:
            self._file = open(Path(run_dir) / EVENTS, "a", encoding="utf-8")
            self._file.writelines(self._pending)
            self._file.flush()
        except OSError:
            self.close()
        self._pending = []

    def close(self) -> None:
        self._closed = True
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None


def tee(*sinks):
    """One event sink that calls each of `sinks`."""
    def emit(event):
        for sink in sinks:
            sink(event)
    return emit


def finished_event(run_dir: str | Path):
    """The run's Finished event when the last event in its events.jsonl is one, else None."""
    try:
        with open(Path(run_dir) / EVENTS, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - TAIL))
            lines = f.read().decode("utf-8", "replace").splitlines()
        event = from_json(next(line for line in reversed(lines) if line.strip()))
    except (OSError, StopIteration, ValueError, TypeError):
        return None
    return event if isinstance(event, ev.Finished) else None
