"""Cross-validation folds: grouped by patient, balanced, rare classes spread, refusals."""

import numpy as np
import pytest

from segstudio.data.folds import assign_folds, max_folds, split_fold
from segstudio.errors import DataError
from segstudio.io.dicom_file import PATIENT_PREFIX


def _patients(n_patients: int, slices: int) -> list[str]:
    return [f"{PATIENT_PREFIX}{p}" for p in range(n_patients) for _ in range(slices)]


def test_a_patient_is_in_one_fold_and_every_item_validates_once():
    groups = _patients(11, 4)
    valid_count = np.zeros(len(groups), dtype=int)
    for fold in range(5):
        train, valid, desc, _ = split_fold(groups, 5, fold, seed=3)
        assert not set(train) & set(valid) and len(train) + len(valid) == len(groups)
        assert {groups[i] for i in train}.isdisjoint({groups[i] for i in valid})
        assert "by patient" in desc
        valid_count[valid] += 1
    assert (valid_count == 1).all()
    sizes = np.bincount(assign_folds(groups, 5, seed=3)[0])
    assert sizes.max() - sizes.min() <= 4  # one patient's slices at most


def test_a_rare_class_reaches_every_fold_where_it_can():
    groups = [f"case{i}" for i in range(20)]
    classes = [{1} for _ in groups]
    for i in (2, 7, 11, 16, 19):  # class 2 in only five cases
        classes[i] = {1, 2}
    for seed in range(5):
        of, notes = assign_folds(groups, 5, seed, classes)
        assert sorted(of[[2, 7, 11, 16, 19]]) == [0, 1, 2, 3, 4]
        assert not notes
        # without the classes a seed may well put two of them together
    spread = [len(set(assign_folds(groups, 5, seed)[0][[2, 7, 11, 16, 19]])) for seed in range(20)]
    assert min(spread) < 5


def test_fewer_cases_than_folds_is_refused_with_the_largest_k():
    groups = _patients(3, 5)
    assert max_folds(groups) == 3
    with pytest.raises(DataError, match="at least 5 patients.*choose 3 folds or fewer"):
        assign_folds(groups, 5, seed=0)
    with pytest.raises(DataError, match="Fold 3 does not exist"):
        split_fold(groups, 3, 3, seed=0)


def test_one_file_is_folded_by_item_and_says_so():
    of, notes = assign_folds(["file.dcm"] * 6, 3, seed=0)
    assert sorted(np.bincount(of)) == [2, 2, 2]
    assert "by item" in notes[0]


def test_fixed_cases_keep_their_fold_when_cases_are_added_and_relabelled():
    groups = [f"case{i}" for i in range(12)]
    before, _ = assign_folds(groups, 3, seed=0, classes=[{1}] * 12)
    fixed = {g: int(f) for g, f in zip(groups, before)}
    more = groups + [f"new{i}" for i in range(6)]
    relabelled = [{1, 2} if i % 4 == 0 else {1} for i in range(len(more))]  # stratification changes
    free, _ = assign_folds(more, 3, seed=0, classes=relabelled)
    assert list(free[:12]) != list(before)  # without the record, old cases move to other folds
    after, _ = assign_folds(more, 3, seed=0, classes=relabelled, fixed=fixed)
    assert list(after[:12]) == list(before)
    assert sorted(np.bincount(after)) == [6, 6, 6]  # the new cases fill the folds evenly
    train, valid, _, _ = split_fold(more, 3, 1, seed=0, classes=relabelled, fixed=fixed)
    assert {more[i] for i in valid} >= {g for g, f in fixed.items() if f == 1}
