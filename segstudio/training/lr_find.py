"""LR finder: fastai's exponential LR sweep on the unfrozen model, and a suggested (lo, hi) range."""

from __future__ import annotations

import math
import tempfile
import threading

import torch
from fastai.callback.schedule import minimum, valley

from ..config import TrainConfig
from ..data import SegDataset
from . import events as ev
from .callbacks import StopGuard
from .learner import build_learner


def find_lr(config: TrainConfig, data: SegDataset, device: torch.device, stop: threading.Event,
            num_it: int = 100) -> ev.LRFound | None:
    """Sweep the LR from 1e-7 to 10 over `num_it` batches; None when stopped.

    hi is fastai's 'valley' suggestion; lo is hi/100 for a pretrained encoder (small early-layer
    rates) and hi itself for a random encoder, which needs the same rate everywhere.
    """
    with tempfile.TemporaryDirectory(prefix="segstudio-lr-") as tmp:
        built = build_learner(config, data, device, path=tmp)
        learn = built.learn
        learn.unfreeze()
        guard = StopGuard(stop)
        learn.add_cb(guard)
        suggestion = learn.lr_find(num_it=num_it, show_plot=False, suggest_funcs=(valley, minimum))
        if stop.is_set() and not guard.failure:
            return None
        lrs = [float(x) for x in learn.recorder.lrs]
        losses = [float(x) for x in learn.recorder.losses]
    hi = float(suggestion.valley)
    if not math.isfinite(hi) or hi <= 0:
        hi = config.lrs(built.pretrained)[1]
    lo = hi / 100 if built.pretrained else hi
    return ev.LRFound(lrs=tuple(lrs), losses=tuple(losses),
                      suggested_lo=lo, suggested_hi=hi,
                      extra={"minimum": float(suggestion.minimum), "pretrained": built.pretrained})
