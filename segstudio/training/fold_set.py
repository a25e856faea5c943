"""A fold set on disk: one folder holding `folds.json` and a run per fold (`fold_0` ...), each an
ordinary run trained on the other folds and validated on its own (data/folds.py); and what the
app and the CLI need to train one fold after another."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import TrainConfig
from ..data.folds import FOLDS_FILE, assign_folds, fold_name, fold_run, is_fold_set, read_fold_record
from ..errors import DataError, SegstudioError
from ..files import write_atomic, write_new
from ..runs import CHECKPOINT, MODEL_FILE, SPLIT_FILE
from .event_log import finished_event
from .parent import continue_config


def fold_config(config: TrainConfig, root: Path, k: int, fold: int) -> TrainConfig:
    """The config of one fold: the same settings, validated on fold `fold` of `k`, its run in
    `root/fold_<fold>`; a fold set continued from a fold set starts from its parent fold."""
    cfg = copy.deepcopy(config)
    cfg.data.folds, cfg.data.fold = k, fold
    cfg.out_dir, cfg.run_name = str(root), fold_name(fold)
    if cfg.init_from and is_fold_set(cfg.init_from):
        cfg.init_from = str(fold_run(cfg.init_from, read_fold_record(cfg.init_from), fold))
    return cfg


def continue_fold_set(parent: str | Path, base: TrainConfig | None = None) -> tuple[TrainConfig, int, list[str]]:
    """(the settings of a new fold set continued from the fold set `parent`, its number of
    folds, notes). Each fold starts from its parent fold's best model, with fine-tuning settings
    as a continued run has them (parent.continue_config); every case keeps its parent's fold,
    so that no fold validates on a case its parent fold trained on (new cases are spread over
    the folds). SegstudioError when a fold of `parent` has no model."""
    root = Path(parent).expanduser().absolute()
    record = read_fold_record(root)
    k = record["folds"]
    missing = [f for f in range(k) if not (fold_run(root, record, f) / MODEL_FILE).is_file()]
    if missing:
        raise SegstudioError(f"Cannot continue from {root.name}: fold(s) {', '.join(map(str, missing))} have no "
                             f"trained model. Resume it first (segstudio train --resume {root}, or File ▸ Resume run).")
    config = continue_config(str(fold_run(root, record, 0)), base)
    fold_of, notes = {}, []
    for f in range(k):
        try:
            split = json.loads((fold_run(root, record, f) / SPLIT_FILE).read_text(encoding="utf-8"))
            fold_of.update({group: f for group in split["valid"]})
        except (OSError, ValueError, KeyError, TypeError):
            notes.append(f"{fold_name(f)} of {root.name} did not record its cases ({SPLIT_FILE}): its folds are "
                         "made again from the current cases, so a case added or relabelled since may move to "
                         "another fold and be validated by a fold whose parent trained on it.")
            fold_of = {}
            break
    data = replace(config.data, folds=k, fold=0, split_seed=record.get("seed", config.data.split_seed),
                   fold_of=fold_of)
    return replace(config, data=data, init_from=str(root), run_name=""), k, notes


def fold_state(root: Path, fold: int) -> str:
    """"finished", "stopped" (a checkpoint to resume) or "new" (nothing usable yet)."""
    run = root / fold_name(fold)
    if (run / MODEL_FILE).is_file() and finished_event(str(run)) is not None:
        return "finished"
    if (run / CHECKPOINT).is_file() and (run / "config.json").is_file():
        return "stopped"
    return "new"


def start_fold_set(config: TrainConfig, k: int, root: Path, fold: int | None = None) -> tuple[TrainConfig, bool]:
    """Make `root` (created if missing) a fold set of `k` folds trained with `config`'s settings:
    its folds.json (written once, whole: an array job's tasks start together) and config.json.
    Returns (the settings each fold starts from, whether this call made the fold set). With `fold`
    (one fold of an array job) an existing fold set of the same K and split is joined; otherwise,
    or when it differs, SegstudioError, as for a folder that is not a fold set."""
    base = copy.deepcopy(config)
    base.data.folds, base.data.fold = k, 0
    seed = base.data.split_seed
    made = False
    if not is_fold_set(root):
        if root.is_dir() and any(not p.name.startswith(".") for p in root.iterdir()):
            raise SegstudioError(f"{root} exists and is not a fold set: give another name.")
        root.mkdir(parents=True, exist_ok=True)
        record = {"folds": k, "seed": seed, "runs": {str(f): fold_name(f) for f in range(k)}}
        made = write_new(root / FOLDS_FILE, json.dumps(record, indent=2))
        if made:
            write_atomic(root / "config.json", base.to_json())
    if not made:  # joining a fold set: its trained folds and this one must share the split
        existing = read_fold_record(root)
        if existing["folds"] != k:
            raise SegstudioError(f"{root} is a fold set of {existing['folds']} folds, not {k}.")
        if existing.get("seed", seed) != seed:
            raise SegstudioError(f"{root} was split with seed {existing['seed']}, not {seed}: its folds "
                                 "would overlap this fold's; use its config or another name.")
        if fold is None:
            raise SegstudioError(f"{root} is already a fold set: continue it with --resume {root} "
                                 "(File ▸ Resume run in the app), or give another name.")
    return base, made


def open_fold_set(root: Path) -> tuple[TrainConfig, int]:
    """(the settings each fold starts from, the number of folds) of the fold set at `root`;
    SegstudioError or OSError when it cannot be read."""
    k = read_fold_record(root)["folds"]
    return TrainConfig.load(root / "config.json"), k


@dataclass(frozen=True)
class FoldStep:
    """What training fold `fold` takes now: its config, and the stopped run it resumes ("" for
    a new fold)."""

    fold: int
    config: TrainConfig
    resume: str = ""


def fold_step(root: Path, k: int, base: TrainConfig, fold: int) -> FoldStep | None:
    """Fold `fold`'s next step, or None when it has a trained model already."""
    state = fold_state(root, fold)
    if state == "finished":
        return None
    if state == "stopped":
        run = root / fold_name(fold)
        return FoldStep(fold, TrainConfig.load(run / "config.json"), str(run))
    return FoldStep(fold, fold_config(base, root, k, fold))


def trained_folds(root: Path, k: int) -> tuple[int, ...]:
    return tuple(f for f in range(k) if fold_state(root, f) == "finished")


def discard_if_empty(root: Path, k: int) -> bool:
    """Remove the fold set `root` when no fold holds a model or a checkpoint (a fold set made by
    a call whose first fold failed leaves no husk); True when it was removed."""
    if any(fold_state(root, f) != "new" for f in range(k)):
        return False
    shutil.rmtree(root, ignore_errors=True)
    return True


def fold_refusal(groups: list[str], k: int) -> str:
    """Why `k` folds cannot be made of items in these groups (patients, scans, files), with the
    largest number that works; "" when they can."""
    try:
        assign_folds(groups, k, 0)
    except DataError as exc:
        return str(exc)
    return ""


@dataclass(frozen=True)
class FoldSetEnded:
    """How training a fold set ended: its folder, its number of folds, the folds with a trained
    model, and the final event (Finished, Cancelled or Failed) of the last fold trained (None
    when every fold had been trained before)."""

    root: str
    folds: int
    trained: tuple[int, ...]
    last: object = None

    @property
    def complete(self) -> bool:
        return len(self.trained) == self.folds
