"""A run sized to a wall-time budget ("the best model in 5 minutes"): the epochs that fit,
measured on the run itself, with the one-cycle (or poly) schedule stretched over them.

One-cycle needs its length in advance. The fit starts with room for MAX_EPOCHS; TimeBudget
times the first training steps (the first, which pays one-off set-up, not counted), estimates an
epoch (its steps and validation), and sets the schedule's length to the epochs that fit before
the deadline. It measures again at the start of every later epoch, from the last whole epochs
(with their validation, checkpoint and preview): while the run is still warming up (the first
quarter of one-cycle), where a longer or shorter schedule changes the learning rate least, the
length may change either way; later it may only shrink (the machine got slower), so the
learning rate never climbs back. The fit stops after the chosen epochs, or when no whole epoch
fits before the deadline. fastai's schedulers read `pct_train`, the share of the run done: once
chosen, it is set before every step as the share of the steps after the probe, so that the
schedule (warm-up included) runs whole over the chosen length. The probe's steps are trained
at the schedule's starting rate, an extra warm-up: counted as done, they made a short run (a few
steps an epoch, the probe a whole epoch) start past its warm-up at the peak rate, and diverge.
"""

from __future__ import annotations

import math
import time
from typing import Callable

from fastai.callback.core import Callback, CancelFitException

MAX_EPOCHS = 1000  # the fit's room: the budget's epochs are chosen below it
PROBE_STEPS = 3  # training steps timed (after the first) for the first estimate
VALID_COST = 0.35  # a validation image's cost, relative to a training image's (forward only)
RESIZE_UNTIL = 0.25  # the schedule may grow only in the run's first quarter (one-cycle's warm-up)
RECENT = 3  # the epochs whose pace predicts the next ones


class TimeBudget(Callback):
    """Sizes the fit it is added to so that it ends by `deadline` (time.monotonic seconds).

    `on_chosen(epochs, note)` is called whenever the chosen epochs change; `agree` (torchrun:
    the largest value over the ranks) makes every rank choose the same."""

    order = -20  # before TrainEvalCallback (-10), which adds this step's share to pct_train

    def __init__(self, deadline: float, on_chosen: Callable[[int, str], None],
                 agree: Callable[[int], int] | None = None, clock: Callable[[], float] = time.monotonic):
        self.deadline, self.on_chosen, self.agree, self.clock = deadline, on_chosen, agree, clock
        self.epochs: int | None = None  # chosen so far
        self.epoch_starts: list[float] = []
        self.steps = 0
        self.t_probe = 0.0
        self.offset = 0  # the training steps done when the epochs were first chosen (the probe)

    def before_fit(self):
        self.epochs, self.epoch_starts, self.steps, self.offset = None, [], 0, 0

    def before_batch(self):
        if self.training and self.epochs is not None:  # before the schedulers read it
            total = len(self.dls.train) * self.epochs
            self.learn.pct_train = min(1.0, (self.learn.train_iter - self.offset) / max(1, total - self.offset))

    def before_epoch(self):
        now = self.clock()
        if self.epochs is not None and self.epoch >= self.epochs:
            raise CancelFitException()  # the chosen epochs are done (fastai's loop has room for more)
        self.epoch_starts.append(now)
        if self.epoch >= 1:
            recent = self.epoch_starts[-RECENT - 1:]  # whole epochs, saves included; the pace now
            seconds = (recent[-1] - recent[0]) / (len(recent) - 1)
            epochs = self.epoch + math.floor((self.deadline - now) / seconds)
            if self.epochs is None or self.epoch == 1 or self.epoch < RESIZE_UNTIL * self.epochs or epochs < self.epochs:
                self._choose(epochs, seconds, self.learn.train_iter)
            if self.epochs <= self.epoch:
                raise CancelFitException()  # no time for another whole epoch

    def after_batch(self):
        if not self.training or self.epochs is not None:
            return
        self.steps += 1
        if self.steps == 1:
            self.t_probe = self.clock()
        elif self.steps == PROBE_STEPS + 1 or self.iter == len(self.dls.train) - 1:
            step = (self.clock() - self.t_probe) / (self.steps - 1)
            seconds = step * len(self.dls.train) * (1 + VALID_COST * self._valid_share())
            # TrainEvalCallback (after this) counts this step in train_iter
            self._choose(math.floor((self.deadline - self.epoch_starts[0]) / seconds), seconds,
                         self.learn.train_iter + 1)

    def _valid_share(self) -> float:
        """Validation images per training image (the validation loader may have other batches)."""
        train, valid = self.dls.train, self.dls.valid
        n_train = len(train) * (train.bs or 1)
        n_valid = len(valid) * (valid.bs or 1)
        return n_valid / max(n_train, 1)

    def _choose(self, epochs: int, seconds: float, done: int) -> None:
        """Size the fit to `epochs` (an epoch taking `seconds`), `done` training steps in."""
        epochs = min(MAX_EPOCHS, max(1, epochs))
        if self.agree is not None:
            epochs = self.agree(epochs)
        if epochs == self.epochs:
            return
        first = self.epochs is None
        if first:
            self.offset = done
        self.epochs = epochs
        self.learn.n_epoch = epochs
        left = self.deadline - self.clock()
        fit = (f"{epochs} epoch(s) fit in the {left:.0f} s left" if left > seconds else
               "the budget allows less than one more: training one")
        self.on_chosen(epochs, (f"Time budget: about {seconds:.1f} s an epoch, so {fit}; the schedule is sized "
                                "to them." if first else f"Time budget: epochs take about {seconds:.1f} s now; "
                                f"{epochs} epoch(s) in all."))
