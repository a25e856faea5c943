"""What a training session offers the code that drives it (the app's TrainWorker, the CLI):
TrainingSession, ProcessSession (a run in a child process), FollowSession (another process's
run) and the test doubles that stand in for them all implement these, with the same parameters
(tests/conftest.py `implements` checks a double at import)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from ..config import TrainConfig
    from ..data.items import SegDataset

EventFn = Callable[[Any], None]  # receives each event (training.events) as it happens


class Session(Protocol):
    """One training run, driven from a worker thread; make one per run."""

    def run(self, config: TrainConfig, on_event: EventFn, dataset: SegDataset | None = None,
            resume: str = "") -> Any:
        """Train (`resume`: a run folder to continue from its checkpoint); returns, and emits,
        the final event: Finished, Cancelled or Failed."""

    def cancel(self) -> None:
        """Ask the run to stop; thread-safe, taking effect within one batch."""


class LRSession(Protocol):
    """The LR finder, driven like a run."""

    def find_lr(self, config: TrainConfig, on_event: EventFn, dataset: SegDataset | None = None,
                num_it: int = 100) -> Any:
        """Sweep the learning rate; returns, and emits, LRFound, Cancelled or Failed."""

    def cancel(self) -> None:
        """Ask the sweep to stop; thread-safe."""
