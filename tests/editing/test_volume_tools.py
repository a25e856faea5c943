"""Tools for labelling volumes, without Qt: interpolation between slices, the intensity-range
brush, the magic wand, island removal and accepting the prediction; every change undoable."""

import numpy as np
import pytest

from segstudio.editing.history import History
from segstudio.editing.labels import EditableMask
from segstudio.editing.volume_tools import (LabelChange, accept_prediction, brush_in_range,
                                            fill_by_intensity, interpolate_slices, remove_island)
from segstudio.errors import Cancelled

SPACING = (2.0, 1.0, 1.0)  # mm, (dz, dy, dx)


def ellipsoid(shape=(40, 48, 48), centre=(20, 24, 24), radius_mm=18.0, spacing=SPACING):
    grid = np.indices(shape).astype(float)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, spacing))
    return d2 < radius_mm ** 2


def every(truth, axis, step):
    """The truth's labels on every `step`-th plane across `axis`, nothing elsewhere."""
    sparse = np.zeros_like(truth)
    keep = [slice(None)] * 3
    keep[axis] = slice(None, None, step)
    sparse[tuple(keep)] = truth[tuple(keep)]
    return sparse


def dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_interpolation_fills_a_sphere_labelled_every_4th_slice(axis):
    truth = ellipsoid().astype(np.uint8)
    sparse = every(truth, axis, 4)
    labels = sparse.copy()
    change = interpolate_slices(labels, axis, spacing=SPACING)
    assert change.what == "interpolate" and np.array_equal(labels, sparse)  # computed, not written
    change.apply(labels)
    keys = np.flatnonzero(np.moveaxis(sparse, axis, 0).any(axis=(1, 2)))
    between = np.zeros(truth.shape[axis], bool)
    between[keys[0] + 1:keys[-1]] = True
    between[keys] = False
    filled, true = (np.moveaxis(a, axis, 0)[between] == 1 for a in (labels, truth))
    nearest = np.moveaxis(truth, axis, 0)[np.round(np.flatnonzero(between) / 4).astype(int) * 4] == 1
    assert dice(filled, true) > max(0.94, dice(nearest, true) + 0.01)  # better than copying a keyframe
    assert not np.moveaxis(labels, axis, 0)[~between].astype(bool).__xor__(
        np.moveaxis(sparse, axis, 0)[~between].astype(bool)).any()  # keyframes and the ends untouched
    change.undo(labels)
    assert np.array_equal(labels, sparse)


def test_interpolation_is_per_class_and_never_paints_over_other_labels():
    a, b = ellipsoid(centre=(20, 16, 14), radius_mm=10), ellipsoid(centre=(20, 30, 34), radius_mm=10)
    truth = a.astype(np.uint8) + 2 * b.astype(np.uint8)
    labels = every(truth, 0, 4)
    labels[18, 30:34, 30:34] = 3  # another structure drawn in a gap of class 2
    change = interpolate_slices(labels, 0, spacing=SPACING)
    out = labels.copy()
    change.apply(out)
    assert (out[18, 30:34, 30:34] == 3).all()
    for c, region in ((1, a), (2, b)):
        assert dice((out == c)[17:24], region[17:24]) > 0.85
    assert interpolate_slices(out, 0, classes=[1], spacing=SPACING).voxels == 0  # nothing left to fill


def test_an_empty_keyframe_stops_the_interpolation():
    labels = np.zeros((9, 12, 12), np.uint8)
    labels[0, 3:9, 3:9] = labels[8, 3:9, 3:9] = 1
    assert (interpolate_slices(labels, 0).after == 1).sum() > 0
    change = interpolate_slices(labels, 0, keyframes=[0, 4, 8])  # plane 4 was labelled empty
    assert not change and "nothing to interpolate" in change.note


def test_interpolation_can_be_cancelled_and_reports_progress():
    labels = every(ellipsoid().astype(np.uint8), 0, 4)
    before, calls = labels.copy(), []
    with pytest.raises(Cancelled):
        interpolate_slices(labels, 0, should_stop=lambda: True)
    interpolate_slices(labels, 0, progress=lambda done, total, msg: calls.append((done, total)))
    assert np.array_equal(labels, before) and calls[-1] == (1, 1)


def test_a_stale_change_is_refused_and_edits_replay_through_the_history():
    labels = every(ellipsoid().astype(np.uint8), 0, 4)
    original = labels.copy()
    change = interpolate_slices(labels, 0, spacing=SPACING)
    labels[change.box[0], change.box[2], change.box[4]] = 7  # edited meanwhile
    with pytest.raises(ValueError, match="changed since"):
        change.apply(labels)
    labels[:] = original
    change.apply(labels)
    filled = labels.copy()
    # today's history records axial-plane Edits: undoing them all restores the labels
    mask = EditableMask("k", "k", np.zeros(labels.shape, np.uint8), labels, None, None)
    history = History()
    edits = change.to_edits("k")
    changed = [k for k in range(labels.shape[0]) if (filled[k] != original[k]).any()]
    assert sorted(e.plane for e in edits) == changed
    for edit in edits:
        history.push(edit)
    while (edit := history.undo()) is not None:
        mask.put(edit, after=False)
    assert np.array_equal(mask.labels, original)


def scan_with_organ():
    """HU: fat (-100) with an organ (60) in the middle and air (-1000) outside."""
    scan = np.full((10, 40, 40), -1000.0, np.float32)
    scan[:, 5:35, 5:35] = -100
    scan[:, 12:28, 12:28] = 60
    return scan


def test_range_brush_paints_only_voxels_within_the_range():
    scan, labels = scan_with_organ(), np.zeros((10, 40, 40), np.uint8)
    # a stroke across the organ's edge in the coronal plane y = 20: (u, v) = (z, x)
    change = brush_in_range(labels, scan, 1, 20, [(5, 5), (5, 35)], 2, 1, 0, 100)
    change.apply(labels)
    painted = labels[:, 20, :] == 1
    assert painted[5, 12:28].all() and painted.sum() == 5 * 16 and labels.sum() == painted.sum()
    assert (scan[labels == 1] == 60).all()
    change.undo(labels)
    labels[3:8, 20, 20:24] = 2  # another class: kept when overwrite=False
    change = brush_in_range(labels, scan, 1, 20, [(5, 5), (5, 35)], 2, 3, 0, 100, overwrite=False)
    change.apply(labels)
    assert (labels[3:8, 20, 20:24] == 2).all() and (labels[5, 20, 12:20] == 3).all()
    nothing = brush_in_range(labels, scan, 1, 20, [(5, 0)], 1, 1, 0, 100)
    assert not nothing and "within [0, 100]" in nothing.note


def test_wand_fills_connected_voxels_and_stops_at_the_organs_edge():
    scan, labels = scan_with_organ(), np.zeros((10, 40, 40), np.uint8)
    scan[4, 20, 20] = 75  # within the tolerance
    change = fill_by_intensity(labels, scan, (4, 20, 20), 2, tolerance=30)
    assert change.voxels == 10 * 16 * 16 and change.box == (0, 10, 12, 28, 12, 28)
    flat = fill_by_intensity(labels, scan, (4, 20, 20), 2, tolerance=30, axis=0)
    assert flat.voxels == 16 * 16 and flat.box[:2] == (4, 5)
    labels[4, 14:16, 14:16] = 1  # another class inside: kept when overwrite=False
    kept = fill_by_intensity(labels, scan, (4, 20, 20), 2, tolerance=30, overwrite=False)
    assert kept.voxels == 10 * 16 * 16 - 4 and (kept.after[4, 2:4, 2:4] == 1).all()
    capped = fill_by_intensity(labels, scan, (4, 20, 20), 2, tolerance=30, cap=1000)
    assert not capped and "cap" in capped.note


def test_removing_an_island_removes_only_the_clicked_component():
    labels = np.zeros((20, 80, 80), np.uint8)
    labels[2:18, 5, 2:78] = 1     # a long thin island, wider than the first search box
    labels[5:8, 40:44, 40:44] = 1  # another island of the same class
    labels[10:12, 5:7, 30:32] = 2  # touching the first, but another class
    change = remove_island(labels, (10, 5, 70))
    change.apply(labels)
    assert not (labels[:, 5, :] == 1).any() and (labels[5:8, 40:44, 40:44] == 1).all()
    assert (labels == 2).sum() == 2 * 2 * 2
    assert not remove_island(labels, (0, 0, 0))  # background clicked


def test_accept_the_prediction_for_a_slice_a_structure_or_the_scan():
    rng = np.random.default_rng(0)
    labels, pred = rng.integers(0, 3, (2, 6, 8, 8)).astype(np.uint8)
    out = labels.copy()
    accept_prediction(out, pred, axis=2, index=3).apply(out)
    assert np.array_equal(out[:, :, 3], pred[:, :, 3])
    assert np.array_equal(np.delete(out, 3, axis=2), np.delete(labels, 3, axis=2))
    out = labels.copy()
    accept_prediction(out, pred, cls=2).apply(out)
    assert np.array_equal(out == 2, pred == 2)
    assert np.array_equal(out[(labels != 2) & (pred != 2)], labels[(labels != 2) & (pred != 2)])
    assert (out[(labels == 2) & (pred != 2)] == 0).all()
    whole = accept_prediction(labels, pred)
    whole.apply(labels)
    assert np.array_equal(labels, pred) and not accept_prediction(labels, pred)
    whole.undo(labels)
    assert isinstance(whole, LabelChange) and not np.array_equal(labels, pred)
