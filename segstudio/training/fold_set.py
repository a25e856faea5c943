"""A fold set on disk: one folder holding `folds.json` and a run per fold (`fold_0` ...), each an
ordinary run trained on the other folds and validated on its own (data/folds.py)."""

from __future__ import annotations

import copy
from pathlib import Path

from ..config import TrainConfig
from ..data.folds import fold_name
from ..runs import CHECKPOINT, MODEL_FILE
from .event_log import finished_event


def fold_config(config: TrainConfig, root: Path, k: int, fold: int) -> TrainConfig:
    """The config of one fold: the same settings, validated on fold `fold` of `k`, its run in
    `root/fold_<fold>`."""
    cfg = copy.deepcopy(config)
    cfg.data.folds, cfg.data.fold = k, fold
    cfg.out_dir, cfg.run_name = str(root), fold_name(fold)
    return cfg


def fold_state(root: Path, fold: int) -> str:
    """"finished", "stopped" (a checkpoint to resume) or "new" (nothing usable yet)."""
    run = root / fold_name(fold)
    if (run / MODEL_FILE).is_file() and finished_event(str(run)) is not None:
        return "finished"
    if (run / CHECKPOINT).is_file() and (run / "config.json").is_file():
        return "stopped"
    return "new"
