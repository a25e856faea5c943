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

    hi: see `suggest_hi`; lo is hi/100 for a pretrained encoder (small early-layer rates) and hi
    itself for a random encoder, which needs the same rate everywhere.
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
    hi = suggest_hi(suggestion.valley, suggestion.minimum * 10, built.pretrained)
    if not math.isfinite(hi) or hi <= 0:
        hi = config.lrs(built.pretrained)[1]
    lo = hi / 100 if built.pretrained else hi
    return ev.LRFound(lrs=tuple(lrs), losses=tuple(losses),
                      suggested_lo=lo, suggested_hi=hi,
                      extra={"minimum": float(suggestion.minimum), "pretrained": built.pretrained})


def suggest_hi(valley: float, lr_at_min: float, pretrained: bool) -> float:
    """The decoder LR to suggest. Fine-tuning a pretrained encoder: fastai's 'valley'. A random
    encoder: a third of the LR where the smoothed loss is lowest. On these losses valley picks
    a point early on the long descent (around 3e-5 on the sample data, where a flat 3e-3 trains
    well), far too low for training from scratch."""
    if pretrained:
        return float(valley)
    return float(min(max(lr_at_min / 3, 1e-5), 1e-1))
