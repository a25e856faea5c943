"""Following a run that another process writes (torchrun, a cluster job, a second app): its
events.jsonl is read as it grows and replayed as events, so the Train area shows it like a run of
its own. Stopping stops the following, not the run."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import events as ev
from .event_json import from_json
from .event_log import EVENTS, TERMINAL

POLL_S = 0.5
QUIET_S = 300.0  # no new event for this long: say the run may have stopped


class FollowSession:
    """A session (same `run`/`cancel` as TrainingSession) that follows `run_dir`'s event log."""

    def __init__(self, run_dir: str | Path, poll_s: float = POLL_S, quiet_s: float = QUIET_S):
        self.run_dir, self.poll_s, self.quiet_s = Path(run_dir), poll_s, quiet_s
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()

    def run(self, config=None, on_event=None, dataset=None, resume: str = ""):
        """Replay the run's latest attempt (from its last Started), then new events as they come;
        returns its final event, or Cancelled when the following is stopped first."""
        path = self.run_dir / EVENTS
        lines, pos = _latest_attempt(path)
        seen = _Seen()
        for line in lines:
            final = self._emit(line, on_event, seen)
            if final is not None:
                return final
        last_news, warned = time.monotonic(), False
        while not self._stop.wait(self.poll_s):
            new, pos = _read_from(path, pos)
            if new:
                last_news = time.monotonic()
            for line in new:
                final = self._emit(line, on_event, seen)
                if final is not None:
                    return final
            if not warned and time.monotonic() - last_news > self.quiet_s:
                warned = True
                on_event(ev.WarningEvent(f"Nothing new from {self.run_dir.name} for {self.quiet_s / 60:.0f} min: "
                                         "the run may have stopped (a killed process writes no last line)."))
        on_event(ev.WarningEvent(f"Stopped following {self.run_dir.name}; the run itself goes on."))
        final = ev.Cancelled(str(self.run_dir), seen.epochs, seen.best)
        on_event(final)
        return final

    @staticmethod
    def _emit(line: str, on_event, seen: "_Seen"):
        try:
            event = from_json(line)
        except ValueError:
            return None  # a line cut short by a crash, or not an event
        if isinstance(event, ev.EpochEnd):
            seen.epochs = event.epoch + 1
            seen.best = event.dice_mean if math.isnan(seen.best) else max(seen.best, event.dice_mean)
        on_event(event)
        return event if isinstance(event, TERMINAL) else None


@dataclass
class _Seen:
    """What the replayed log has shown so far."""
    epochs: int = 0
    best: float = math.nan


def _read_from(path: Path, pos: int) -> tuple[list[str], int]:
    """The complete lines after byte `pos`, and the position after them."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except OSError:
        return [], pos
    end = data.rfind(b"\n") + 1  # a line still being written waits for its newline
    return data[:end].decode("utf-8", errors="replace").splitlines(), pos + end


def _latest_attempt(path: Path) -> tuple[list[str], int]:
    """The lines from the last Started on (earlier attempts of a resumed run are replayed by it)."""
    lines, pos = _read_from(path, 0)
    starts = [i for i, line in enumerate(lines) if line.startswith('{"event": "Started"')]
    return (lines[starts[-1]:] if starts else lines), pos
