"""Plain event objects the engine emits; the GUI and CLI only ever see these.

Events carry Python numbers, strings and numpy arrays, never tensors, so they can cross threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class GroupInfo:
    """One optimizer parameter group: what it holds, its peak LR and whether it trains."""

    name: str
    n_params: int
    lr: float
    frozen: bool


@dataclass(frozen=True)
class Progress:
    """Loading or preparing: `done` of `total` steps (total 0 = unknown)."""

    done: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class Started:
    device: str  # "cuda", "mps" or "cpu"
    device_name: str  # e.g. "NVIDIA H100" or "CPU"
    mixed_precision: bool
    pretrained: bool  # the encoder really starts from pretrained weights
    groups: tuple[GroupInfo, ...]
    codes: tuple[str, ...]
    n_train: int
    n_valid: int
    epochs: int
    iters_per_epoch: int
    run_dir: str
    lr_lo: float
    lr_hi: float
    volumetric: bool = False  # Dice is per scan, in 3-D (else over all validation pixels)
    parent_run: str = ""  # a continued run: the run folder whose best model it starts from
    bs: int = 0  # the batch size used (the config's, or the automatic one)


@dataclass(frozen=True)
class PhaseChanged:
    """fine_tune switches from the frozen to the unfrozen phase (and reports group state)."""

    name: str  # "frozen" or "unfrozen"
    groups: tuple[GroupInfo, ...]


@dataclass(frozen=True)
class BatchEnd:
    epoch: int  # 0-based
    iteration: int  # global, 0-based, over the whole run
    total_iterations: int
    loss: float
    lrs: tuple[float, ...]  # current LR of every parameter group, encoder first


@dataclass(frozen=True)
class EpochEnd:
    epoch: int  # 0-based
    epochs: int
    train_loss: float
    valid_loss: float
    dice: tuple[float, ...]  # per class, background included (nan when a class is absent)
    dice_mean: float  # mean over foreground classes
    seconds: float
    is_best: bool


@dataclass(frozen=True)
class Preview:
    """Predictions on a few fixed validation items after an epoch."""

    epoch: int
    names: tuple[str, ...]
    images: tuple[np.ndarray, ...]  # (H, W) or (H, W, 3) uint8
    targets: tuple[np.ndarray, ...]  # (H, W) uint8 class indices
    preds: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class WarningEvent:
    message: str


@dataclass(frozen=True)
class Finished:
    run_dir: str
    best_epoch: int
    best_dice: float
    epochs_done: int


@dataclass(frozen=True)
class Cancelled:
    run_dir: str
    epochs_done: int
    best_dice: float  # nan when no epoch finished


@dataclass(frozen=True)
class Failed:
    message: str
    advice: str = ""
    run_dir: str = ""


@dataclass(frozen=True)
class LRFound:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    suggested_lo: float
    suggested_hi: float
    extra: dict = field(default_factory=dict)


Event = (Progress | Started | PhaseChanged | BatchEnd | EpochEnd | Preview | WarningEvent | Finished
         | Cancelled | Failed | LRFound)
