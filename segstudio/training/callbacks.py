"""fastai callbacks that turn a fit into segstudio events, save the best model and stop on request."""

from __future__ import annotations

import math
import threading
import time
from typing import Callable

import numpy as np
import torch
from fastai.callback.core import Callback, CancelFitException
from fastai.torch_core import TensorImage, TensorMask

from . import events as ev
from .distributed import unwrap
from .metrics import PerClassDice


class StopGuard(Callback):
    """Raises CancelFitException when the stop flag is set or the loss stops being finite.

    It also raises in before_fit, so a stop between two fits (fine_tune's phases) holds. With
    `agree` (distributed training: the largest code over the ranks), every rank stops at the same
    training batch, whichever rank was asked to stop or saw the NaN.
    """

    order = -10
    NAN = "The training loss became NaN or infinite."

    def __init__(self, stop: threading.Event, agree: Callable[[int], int] | None = None):
        self.stop, self.agree = stop, agree
        self.failure = ""

    def _check(self):
        code = 2 if self.failure else 1 if self.stop.is_set() else 0
        if self.agree is not None:
            code = self.agree(code)
        if code == 2 and not self.failure:
            self.failure = self.NAN
        if code:
            self.stop.set()
            raise CancelFitException()

    def before_fit(self):
        self._check()

    def before_batch(self):
        if self.agree is None or self.training:  # validation parts differ in length across ranks
            self._check()

    def after_train(self):
        if self.agree is not None:  # a NaN in an epoch's last batch: stop before it is validated and saved
            self._check()

    def after_loss(self):
        if self.training and not torch.isfinite(self.learn.loss).item():
            self.failure = self.NAN
            self.stop.set()
            if self.agree is None:  # with ranks, the next batch's check stops them all together
                raise CancelFitException()


DIVERGENCE = 100.0  # valid loss above this multiple of the first epoch's: warn


class EventReporter(Callback):
    """Emits BatchEnd, EpochEnd and Preview events; calls `on_best` when the valid Dice improves.

    Order 51: runs after the Recorder, so the epoch's valid loss is recorded.
    """

    order = 51

    def __init__(self, emit: Callable, dice: PerClassDice, total_epochs: int, preview: tuple | None,
                 on_best: Callable[[int, float], None], on_epoch: Callable[[dict], None]):
        self.emit, self.dice, self.total_epochs = emit, dice, total_epochs
        self.preview, self.on_best, self.on_epoch = preview, on_best, on_epoch
        self.epoch_base = 0  # epochs done in earlier fits (fine_tune's frozen phase)
        self.iteration = 0
        self.best_dice, self.best_epoch, self.epochs_done = -math.inf, -1, 0
        self.start_saved = False  # a continued run saved its starting model (best_epoch -1)
        self.skip_to = 0  # a resumed run: the epochs done before (fastai skips them; so do we)
        self.restore: Callable[[], None] | None = None  # a resumed run: puts the generators back
        self.first_valid_loss, self.warned_divergence = math.nan, False

    @property
    def total_iterations(self) -> int:
        return self.total_epochs * len(self.learn.dls.train)

    def before_epoch(self):
        self.start, self.losses = time.perf_counter(), []
        if self.restore is not None and self.epoch == self.skip_to:
            # the generators as they were after the last finished epoch, just before the first
            # resumed one draws: fit's own set-up must not move them
            self.restore()
            self.restore = None

    def after_batch(self):
        if not self.training or self.epoch < self.skip_to:
            return
        loss = self.learn.loss.item()
        self.losses.append(loss)
        self.emit(ev.BatchEnd(epoch=self.epoch_base + self.epoch, iteration=self.iteration,
                              total_iterations=self.total_iterations, loss=loss,
                              lrs=tuple(float(h["lr"]) for h in self.learn.opt.hypers)))
        self.iteration += 1

    def after_epoch(self):
        if self.epoch < self.skip_to:  # a skipped epoch of a resumed run: reported before
            return
        epoch = self.epoch_base + self.epoch
        per_class = self.dice.per_class
        mean = self.dice.value
        is_best = mean > self.best_dice
        if is_best:
            self.best_dice, self.best_epoch = mean, epoch
            self.on_best(epoch, mean)
        self.epochs_done = epoch + 1
        train_loss = float(np.mean(self.losses)) if self.losses else math.nan
        valid_loss = float(self.learn.recorder.values[-1][1])
        seconds = time.perf_counter() - self.start
        self.on_epoch(dict(epoch=epoch, train_loss=train_loss, valid_loss=valid_loss, dice=per_class,
                           dice_mean=mean, seconds=seconds))
        self.emit(ev.EpochEnd(epoch=epoch, epochs=self.total_epochs, train_loss=train_loss,
                              valid_loss=valid_loss, dice=tuple(float(d) for d in per_class),
                              dice_mean=mean, seconds=seconds, is_best=is_best))
        self._check_divergence(valid_loss)
        if self.preview is not None:
            self.emit(self._preview(epoch))

    def _check_divergence(self, valid_loss: float) -> None:
        """Warn once when the validation loss explodes (a learning rate far too high) while the
        training loss stays finite, which StopGuard's NaN check does not catch."""
        if math.isnan(self.first_valid_loss):
            self.first_valid_loss = valid_loss
            return
        if not self.warned_divergence and (not math.isfinite(valid_loss)
                                           or valid_loss > DIVERGENCE * max(self.first_valid_loss, 1e-3)):
            self.warned_divergence = True
            self.emit(ev.WarningEvent(
                f"The validation loss exploded ({self.first_valid_loss:.3g} after the first epoch, now "
                f"{valid_loss:.3g}): the learning rate is probably too high. Lower the upper end of the "
                "range or use Find LR."))

    def _preview(self, epoch: int) -> ev.Preview:
        names, inputs, images, targets = self.preview
        x, _ = self.learn.dls.valid.after_batch((TensorImage(torch.from_numpy(inputs)).to(self.learn.dls.device),
                                                 TensorMask(torch.from_numpy(targets)).to(self.learn.dls.device)))
        model = unwrap(self.learn.model)  # rank 0 alone: no DDP forward, which would wait for the others
        model.eval()
        with torch.no_grad():
            preds = model(x).argmax(dim=1).to(torch.uint8).cpu().numpy()
        return ev.Preview(epoch=epoch, names=tuple(names), images=tuple(display_image(i) for i in images),
                          targets=tuple(targets), preds=tuple(preds))


def display_image(chw: np.ndarray) -> np.ndarray:
    """(C, H, W) uint8 -> (H, W) or (H, W, 3) for display."""
    return chw[0] if chw.shape[0] == 1 else np.ascontiguousarray(chw.transpose(1, 2, 0))
