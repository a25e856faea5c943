"""nnU-Net's optimiser and schedule for fastai: SGD with Nesterov momentum 0.99 and a poly
learning-rate decay, lr_t = lr * (1 - t)^0.9, over the whole run (`Schedule.poly`).

fastai ships no poly decay to zero (its `SchedPoly` interpolates between two values with t^p),
and its own SGD has no Nesterov term, so torch's SGD is wrapped and the decay is a
`ParamScheduler` function."""

from __future__ import annotations

from functools import partial

import numpy as np
import torch
from fastai.callback.schedule import ParamScheduler
from fastai.learner import Learner
from fastai.optimizer import OptimWrapper

POWER = 0.9
MOMENTUM = 0.99
WEIGHT_DECAY = 3e-5

sgd_nesterov = partial(OptimWrapper, opt=torch.optim.SGD, momentum=MOMENTUM, nesterov=True,
                       weight_decay=WEIGHT_DECAY)

# fastai's own Adam (decoupled weight decay, betas 0.9/0.99, eps 1e-5, wd 0.01) as torch's fused
# AdamW kernel: one kernel per step instead of fastai's Python loop of tensor operations over the
# parameters. On an H200 it took the training loop from 0.51 to 0.60 of the forward+backward
# ceiling (resnet18, 256 px, tests/benchmarks/bench_train_throughput.py); on 2 CPU cores a
# resnet18 U-Net's step of the optimiser took ~40 ms instead of ~340 ms (tests/benchmarks/README.md,
# "Fused AdamW on the CPU"). MPS keeps fastai's Adam (not measured there).
FUSED_DEVICES = ("cuda", "cpu")
fused_adamw = partial(OptimWrapper, opt=partial(torch.optim.AdamW, fused=True, betas=(0.9, 0.99), eps=1e-5,
                                                weight_decay=0.01))


def poly(lr_max: np.ndarray, power: float = POWER):
    """The learning rate of each parameter group at training progress pos in [0, 1]."""
    return lambda pos: lr_max * (1 - pos) ** power


def fit_poly(learn: Learner, n_epoch: int, lr_max, start_epoch: int = 0) -> None:
    """`learn.fit` with the poly decay from `lr_max` (a slice spreads it over the groups, as
    fit_one_cycle does); `start_epoch` resumes within the same schedule."""
    if learn.opt is None:
        learn.create_opt()
    learn.opt.set_hyper("lr", lr_max)
    lrs = np.array([h["lr"] for h in learn.opt.hypers])
    learn.fit(n_epoch, cbs=ParamScheduler({"lr": poly(lrs)}), start_epoch=start_epoch)
