"""Cross-validation folds that keep each group (patient, scan, multi-frame file) in one fold and
spread rare classes over the folds.

nnU-Net's folds are scikit-learn's KFold over cases; here a patient's slices never straddle two
folds (as the single split keeps them on one side), and a greedy assignment, rarest class first,
puts a structure that occurs in few groups into as many folds as it can (scikit-learn's
StratifiedGroupKFold takes one label per item, not a set of classes per group).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..errors import DataError, SegstudioError
from ..io.dicom_file import PATIENT_PREFIX
from .split import split_groups

FOLDS_FILE = "folds.json"  # a fold set's record: {"folds": K, "seed": ..., "runs": {"0": "fold_0", ...}}


def fold_name(fold: int) -> str:
    return f"fold_{fold}"


def is_fold_set(path: str | Path) -> bool:
    return (Path(path) / FOLDS_FILE).is_file()


def read_fold_record(root: str | Path) -> dict:
    """A fold set's folds.json, with an int "folds"; SegstudioError when it cannot be read."""
    try:
        record = json.loads((Path(root) / FOLDS_FILE).read_text(encoding="utf-8"))
        record["folds"] = int(record["folds"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SegstudioError(f"{Path(root) / FOLDS_FILE} cannot be read as a fold set ({exc}).") from exc
    return record


def fold_run(root: str | Path, record: dict, fold: int) -> Path:
    """The run folder of fold `fold` of the fold set at `root`."""
    return Path(root) / record.get("runs", {}).get(str(fold), fold_name(fold))


def max_folds(groups: list[str]) -> int:
    """The most folds `groups` allow: one group each at least (items, when all share one group)."""
    names = set(groups)
    return len(names) if len(names) >= 2 else len(groups)


def split_items(groups: list[str], cfg: DataConfig, classes: list[set] | None = None
                ) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The run's split: fold `cfg.fold` of `cfg.folds` when folds are set (the groups in
    `cfg.fold_of` keep their fold), else the validation share (split.split_groups)."""
    if cfg.folds >= 2:
        return split_fold(groups, cfg.folds, cfg.fold, cfg.split_seed, classes, cfg.fold_of)
    return split_groups(groups, cfg.valid_pct, cfg.split_seed)


def split_record(groups: list[str], train_idx: np.ndarray, valid_idx: np.ndarray) -> dict[str, list[str]]:
    """A run's split as its run folder records it (SPLIT_FILE): the groups on each side."""
    return {side: sorted({groups[i] for i in idx}) for side, idx in (("train", train_idx), ("valid", valid_idx))}


def assign_folds(groups: list[str], k: int, seed: int, classes: list[set] | None = None,
                 fixed: dict[str, int] | None = None) -> tuple[np.ndarray, list[str]]:
    """(fold of each item, notes) for `k` folds. `classes`: the foreground classes (any hashable
    keys) of each item's mask, for stratification. `fixed`: groups whose fold is given (a
    continued fold set's, so that no fold validates on a case its parent fold trained on);
    the others are spread around them. Refused (DataError) when there are fewer groups than
    folds."""
    if k < 2:
        raise DataError(f"Folds need at least 2 parts, not {k}.")
    notes = []
    names = sorted(set(groups))
    if len(names) < 2:
        notes.append("all items come from one patient or file: folds by item, so a fold's validation "
                     "images are not independent of its training images")
        groups = [str(i) for i in range(len(groups))]
        names = sorted(set(groups))
    if len(names) < k:
        kind = "patients" if any(g.startswith(PATIENT_PREFIX) for g in names) else "cases"
        raise DataError(f"{k} folds need at least {k} {kind} (each in one fold); this dataset has "
                        f"{len(names)}: choose {len(names)} folds or fewer.")
    known = set(names)
    fixed = {g: f for g, f in (fixed or {}).items() if g in known and 0 <= f < k}
    size = Counter(groups)
    index: dict = {}  # class key -> column
    present: dict[str, set[int]] = defaultdict(set)
    for g, keys in zip(groups, classes or [set()] * len(groups)):
        present[g] |= {index.setdefault(key, len(index)) for key in keys}
    in_groups = Counter(c for g in names for c in present[g])  # how many groups hold each class
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    # rarest class first (groups without foreground last), larger groups first within a rarity
    order.sort(key=lambda g: (min((in_groups[c] for c in present[g]), default=len(names) + 1), -size[g]))
    fold_items = np.zeros(k, dtype=np.int64)
    fold_classes = np.zeros((k, len(index)), dtype=np.int64)
    fold_of: dict[str, int] = {}
    for g in [g for g in order if g in fixed] + [g for g in order if g not in fixed]:
        rare = min(present[g], key=lambda c: in_groups[c], default=None)
        held = fold_classes[:, rare] if rare is not None else np.zeros(k, dtype=np.int64)
        # its given fold, else the one with the fewest of its rare class, then the smallest
        f = fixed[g] if g in fixed else int(np.lexsort((np.arange(k), fold_items, held))[0])
        fold_of[g] = f
        fold_items[f] += size[g]
        for c in present[g]:
            fold_classes[f, c] += 1
    keys = {column: key for key, column in index.items()}
    missing = [keys[c] for c in in_groups if in_groups[c] >= k and (fold_classes[:, c] == 0).any()]
    if missing:
        notes.append(f"mask value(s) {', '.join(map(str, missing))} missing from some folds")
    return np.array([fold_of[g] for g in groups], dtype=np.int64), notes


def split_fold(groups: list[str], k: int, fold: int, seed: int, classes: list[set[int]] | None = None,
               fixed: dict[str, int] | None = None) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """(train_idx, valid_idx, description, notes) of fold `fold` of `k`: its items validate, the
    other folds' train."""
    if not 0 <= fold < k:
        raise DataError(f"Fold {fold} does not exist in {k} folds (0 to {k - 1}).")
    of, notes = assign_folds(groups, k, seed, classes, fixed)
    valid = of == fold
    patients = len({g for g in groups if g.startswith(PATIENT_PREFIX)})
    by = "by patient" if patients else "by case"
    desc = f"fold {fold} of {k} ({by}, seed {seed}): {int(valid.sum())} of {len(groups)} items in validation"
    return np.flatnonzero(~valid), np.flatnonzero(valid), desc, notes
