"""What every long core task is given: a progress callback and a stop check."""

from __future__ import annotations

from typing import Callable

ProgressFn = Callable[[int, int, str], None]  # (done, total, message); total 0: not known yet
StopFn = Callable[[], bool]                   # True: the task raises errors.Cancelled at its next check
