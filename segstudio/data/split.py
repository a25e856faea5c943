"""Seeded train/validation split that keeps each group (patient, multi-frame file) on one side."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..io.dicom_file import PATIENT_PREFIX


def split_groups(groups: list[str], valid_pct: float, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """(train_idx, valid_idx, description, notes).

    Groups are shuffled with `seed` and the prefix of whole groups whose size is closest to
    `valid_pct` of the items goes to validation; with N >= 2 both sides get at least one item.
    """
    n = len(groups)
    pct = f"{valid_pct:.0%}"
    if n < 2:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64), \
            "no validation set (a single pair)", []
    names = sorted(set(groups))
    notes = []
    patients = sum(g.startswith(PATIENT_PREFIX) for g in names)
    rng = np.random.default_rng(seed)
    if len(names) < 2:
        notes.append("all items come from one patient or file: split by item, so validation "
                     "images are not independent of the training images")
        groups, names = [str(i) for i in range(n)], [str(i) for i in range(n)]
        patients = 0
    order = [names[i] for i in rng.permutation(len(names))]
    count = Counter(groups)
    sizes = np.cumsum([count[g] for g in order])[:-1]  # keep >= 1 group for training
    k = int(np.argmin(np.abs(sizes - max(1.0, valid_pct * n)))) + 1
    valid_set = set(order[:k])
    is_valid = np.array([g in valid_set for g in groups])
    valid_idx, train_idx = np.flatnonzero(is_valid), np.flatnonzero(~is_valid)
    if patients:
        n_valid_patients = sum(g.startswith(PATIENT_PREFIX) for g in valid_set)
        desc = (f"by patient: {n_valid_patients} of {patients} patients in validation "
                f"(target {pct}, seed {seed})")
        notes.append("patient-level split: no patient is in both sets")
        if patients < len(names):
            notes.append("items without a PatientID are split individually")
    else:
        desc = f"random {pct}{' by file' if len(names) < n else ''} (seed {seed})"
    return train_idx.astype(np.int64), valid_idx.astype(np.int64), desc, notes
