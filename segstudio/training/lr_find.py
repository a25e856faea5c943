"""LR finder: fastai's exponential LR sweep on the unfrozen model, and a suggested (lo, hi) range."""

from __future__ import annotations

import math
import tempfile
import threading

import torch
from fastai.callback.core import Callback
from fastai.callback.schedule import minimum, valley

from ..config import TrainConfig
from ..data import SegDataset
from . import events as ev
from .callbacks import StopGuard
from .learner import build_learner

SWEEP = (1e-6, 10.0)  # from the LR slider's lowest value up to where every loss diverges


class SweepProgress(Callback):
    """Reports each step of the sweep as a Progress event."""

    def __init__(self, on_event, total: int):
        self.on_event, self.total, self.done = on_event, total, 0

    def after_batch(self):
        if self.training:
            self.done += 1
            self.on_event(ev.Progress(min(self.done, self.total), self.total, "LR sweep"))


def find_lr(config: TrainConfig, data: SegDataset, device: torch.device, stop: threading.Event,
            num_it: int = 100, on_event=lambda event: None) -> ev.LRFound | None:
    """Sweep the LR over SWEEP in `num_it` batches; None when stopped.

    hi: see `suggest_hi`; lo is hi/100 for a pretrained encoder (small early-layer rates) and hi
    itself for a random encoder, which needs the same rate everywhere.
    """
    with tempfile.TemporaryDirectory(prefix="segstudio-lr-") as tmp:
        built = build_learner(config, data, device, path=tmp)
        learn = built.learn
        learn.unfreeze()
        guard = StopGuard(stop)
        learn.add_cb(guard)
        learn.add_cb(SweepProgress(on_event, num_it))
        try:
            learn.lr_find(start_lr=SWEEP[0], end_lr=SWEEP[1], num_it=num_it, show_plot=False, suggest_funcs=None)
        except Exception:
            if stop.is_set() and not guard.failure:  # stopped before the sweep had started
                return None
            raise
        if stop.is_set() and not guard.failure:
            return None
        lrs = [float(x) for x in learn.recorder.lrs]
        losses = [float(x) for x in learn.recorder.losses]
    default = config.lrs(built.pretrained)[1]
    valley_lr, lr_at_min = suggestions(lrs, losses, num_it)
    hi = suggest_hi(valley_lr, lr_at_min, built.pretrained) if valley_lr else default
    if not math.isfinite(hi) or hi <= 0:
        hi = default
    lo = hi / 100 if built.pretrained else hi
    return ev.LRFound(lrs=tuple(lrs), losses=tuple(losses),
                      suggested_lo=lo, suggested_hi=hi,
                      extra={"lr_at_min": lr_at_min, "pretrained": built.pretrained})


def suggestions(lrs: list[float], losses: list[float], num_it: int) -> tuple[float, float]:
    """(fastai's 'valley' LR, the LR at the lowest loss) over the part of the sweep fastai's
    lr_find uses (the first 10% and the last 5 points dropped, cut at the first NaN);
    (0, 0) when too little of the sweep is there to judge (a sweep cut short)."""
    lr = torch.tensor(lrs[num_it // 10:-5])
    loss = torch.tensor(losses[num_it // 10:-5])
    finite = torch.isfinite(loss)
    if not finite.all():
        cut = int(torch.nonzero(~finite)[0])
        lr, loss = lr[:cut], loss[:cut]
    if len(loss) < 5:
        return 0.0, 0.0
    return valley(lr, loss, num_it)[0], minimum(lr, loss, num_it)[0] * 10


def suggest_hi(valley: float, lr_at_min: float, pretrained: bool) -> float:
    """The decoder LR to suggest. Fine-tuning a pretrained encoder: fastai's 'valley'. A random
    encoder: a third of the LR where the smoothed loss is lowest. On these losses valley picks
    a point early on the long descent (around 3e-5 on the sample data, where a flat 3e-3 trains
    well), far too low for training from scratch."""
    if pretrained:
        return float(valley)
    return float(min(max(lr_at_min / 3, 1e-5), 1e-1))
