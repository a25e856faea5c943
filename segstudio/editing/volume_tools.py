"""Tools for labelling volumes, without Qt: interpolate between slices, a brush limited to an
intensity range, fill by intensity (magic wand), remove an island, accept the prediction.

Every tool reads a (Z, Y, X) label array (and the scan, in its own units: HU for CT) and returns a
LabelChange, the box it changes with the values before and after, without writing anything:
`change.apply(labels)` writes it and `change.undo(labels)` takes it back. So slow tools
(interpolation) can run in the task runner while the GUI thread applies the result, and a change
made stale by an edit in between is refused instead of overwriting that edit.

Planes are addressed by (axis, index) across the canonical array axes (viewer_state). In-plane
positions (u, v) run along the plane's two other array axes in array order, not flipped for
display: ScanGeometry.to_plane turns a display position into one, to_voxel into a voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from scipy import ndimage

from ..errors import Cancelled
from . import paint
from .history import Edit
from .viewer_state import plane_axes, plane_of
from ..tasks import ProgressFn, StopFn

Box = tuple[int, int, int, int, int, int]  # (z0, z1, y0, y1, x0, x1)
WAND_CAP = 5_000_000  # voxels; a liver in 0.7 mm CT is about 4 million, a too wide tolerance floods more


@dataclass(eq=False)
class LabelChange:
    """One undoable change of a label volume: `before` and `after` of the (Z, Y, X) `box`."""

    box: Box
    before: np.ndarray
    after: np.ndarray
    what: str                   # "interpolate", "range brush", "wand", "island", "accept"
    note: str = ""              # for the user, e.g. why nothing changed

    @classmethod
    def nothing(cls, what: str, note: str) -> LabelChange:
        empty = np.zeros((0, 0, 0), np.uint8)
        return cls((0, 0, 0, 0, 0, 0), empty, empty, what, note)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        b = self.box
        return slice(b[0], b[1]), slice(b[2], b[3]), slice(b[4], b[5])

    @property
    def voxels(self) -> int:
        """How many voxels it changes."""
        return int(np.count_nonzero(self.before != self.after))

    def __bool__(self) -> bool:
        return self.before.size > 0

    def apply(self, labels: np.ndarray) -> None:
        """Write the change (do or redo)."""
        self._put(labels, self.before, self.after)

    def undo(self, labels: np.ndarray) -> None:
        self._put(labels, self.after, self.before)

    def _put(self, labels: np.ndarray, expect: np.ndarray, value: np.ndarray) -> None:
        region = labels[self.slices]
        if not np.array_equal(region, expect):
            raise ValueError(f"the labels changed since this {self.what} was computed; do it again")
        region[...] = value

    def planes(self, axis: int = 0) -> Iterator[tuple[int, tuple, np.ndarray, np.ndarray]]:
        """(index, in-plane box (u0, u1, v0, v1), before, after) of each plane across `axis` that
        it changes: the per-plane form of the edit history."""
        b = self.box
        u, v = plane_axes(axis)
        plane_box = (b[2 * u], b[2 * u + 1], b[2 * v], b[2 * v + 1])
        for i in range(self.before.shape[axis]):
            old, new = np.take(self.before, i, axis), np.take(self.after, i, axis)
            if not np.array_equal(old, new):
                yield b[2 * axis] + i, plane_box, old, new

    def to_edits(self, key: str) -> list[Edit]:
        """The change as history Edits of axial planes (today's EditableMask.put undoes those)."""
        return [Edit(key, k, box, old, new, self.what) for k, box, old, new in self.planes(0)]


# -- interpolate between slices ---------------------------------------------------------------
def interpolate_slices(labels: np.ndarray, axis: int, *, classes=None, keyframes=None,
                       spacing=(1.0, 1.0, 1.0), progress: ProgressFn | None = None,
                       should_stop: StopFn | None = None) -> LabelChange:
    """Fill the planes across `axis` between labelled planes, per class, by shape-based
    interpolation: between labelled planes k0 < k1, plane k gets the class where
    (1 - t) * sdf0 + t * sdf1 < 0, t = (k - k0) / (k1 - k0), sdf the signed distance (mm) to
    the class's outline. Labelled planes are those holding the class, or the `keyframes` given
    (then a keyframe without the class stops it). Only background voxels are painted; where two
    classes reach one voxel, the one it is deeper inside wins. Raises Cancelled when
    `should_stop()` says so (nothing is written)."""
    u, v = plane_axes(axis)
    sampling = (float(spacing[u]), float(spacing[v]))
    present = _classes_per_plane(labels, axis)
    if classes is None:
        classes = np.flatnonzero(present.any(axis=0)[1:]) + 1
    classes = [int(c) for c in classes]
    keys = sorted(set(int(k) for k in keyframes)) if keyframes is not None else None
    if keys and not 0 <= keys[0] <= keys[-1] < labels.shape[axis]:
        raise ValueError(f"keyframes must be planes 0 to {labels.shape[axis] - 1}")
    fills: dict[int, list] = {}
    for n, c in enumerate(classes):
        if should_stop is not None and should_stop():
            raise Cancelled("interpolation cancelled")
        if progress is not None:
            progress(n, len(classes), f"class {c}")
        has = present[:, c] if c < present.shape[1] else np.zeros(len(present), bool)
        frames = np.flatnonzero(has) if keys is None else keys
        for k0, k1 in zip(frames[:-1], frames[1:]):
            if k1 - k0 > 1 and has[k0] and has[k1]:
                _interpolate_gap(labels, axis, c, k0, k1, sampling, fills)
    if progress is not None:
        progress(len(classes), len(classes), "")
    if not fills:
        return LabelChange.nothing("interpolate", "nothing to interpolate: no class has two "
                                   "labelled slices with unlabelled slices between them")
    planes = {k: _merge(labels, axis, k, found) for k, found in fills.items()}
    return _planes_change(labels, axis, planes, "interpolate",
                          "nothing to add: the shapes between the labelled slices are already labelled")


def signed_distance(mask: np.ndarray, sampling=(1.0, 1.0)) -> np.ndarray:
    """Distance (mm) of each pixel to the nearest pixel on the other side of the outline:
    negative inside `mask`, positive outside."""
    if mask.all():
        return np.full(mask.shape, -np.inf)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    return outside - ndimage.distance_transform_edt(mask, sampling=sampling)


def _interpolate_gap(labels, axis, c, k0, k1, sampling, fills) -> None:
    m0 = plane_of(labels, axis, k0, (False, False)) == c
    m1 = plane_of(labels, axis, k1, (False, False)) == c
    box = _grown_box(m0 | m1, 1)
    sdf0, sdf1 = signed_distance(m0[box], sampling), signed_distance(m1[box], sampling)
    for k in range(k0 + 1, k1):
        fills.setdefault(k, []).append((c, box, sdf0, sdf1, (k - k0) / (k1 - k0)))


def _merge(labels, axis, k, found) -> np.ndarray:
    """Plane k with the interpolated classes painted on its background."""
    plane = plane_of(labels, axis, k, (False, False))
    best = np.zeros(plane.shape, np.float64)
    winner = np.zeros(plane.shape, plane.dtype)
    for c, box, sdf0, sdf1, t in found:
        score = (1 - t) * sdf0 + t * sdf1
        region = best[box]
        take = score < region
        region[take] = score[take]
        winner[box][take] = c
    return np.where((plane == 0) & (winner > 0), winner, plane)


def _classes_per_plane(labels: np.ndarray, axis: int) -> np.ndarray:
    """(planes, classes) bool: which label values each plane across `axis` holds."""
    top = int(labels.max()) + 1 if labels.size else 1
    return np.stack([np.bincount(plane_of(labels, axis, k, (False, False)).ravel(), minlength=top) > 0
                     for k in range(labels.shape[axis])])


# -- brush, wand, island, accept --------------------------------------------------------------
def brush_in_range(labels: np.ndarray, scan: np.ndarray, axis: int, index: int, points, radius: int,
                   value: int, lo: float, hi: float, *, overwrite: bool = True) -> LabelChange:
    """A brush stroke through in-plane `points` [(u, v), ...] of plane (axis, index) that paints
    only voxels whose scan value is within [lo, hi] (e.g. HU: a liver brush that stops at fat).
    `overwrite=False` paints background only."""
    _check_scan(labels, scan)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not len(pts):
        return LabelChange.nothing("range brush", "no stroke")
    plane = plane_of(labels, axis, index, (False, False))
    r = max(int(radius), 0)
    u0, v0 = np.maximum(np.floor(pts.min(axis=0)).astype(int) - r, 0)
    u1, v1 = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + r + 1, plane.shape)
    if u0 >= u1 or v0 >= v1:
        return LabelChange.nothing("range brush", "the stroke is outside the scan")
    swept = np.zeros((u1 - u0, v1 - v0), np.uint8)
    local = [(u - u0, v - v0) for u, v in pts]
    for a, b in zip(local, local[1:] or local):
        paint.line(swept, a, b, r, 1)
    values = plane_of(scan, axis, index, (False, False))[u0:u1, v0:v1]
    old = plane[u0:u1, v0:v1]
    region = swept.astype(bool) & (values >= lo) & (values <= hi)
    if not overwrite:
        region &= old == 0
    new = np.where(region, np.asarray(value, old.dtype), old)
    box = _plane_box(axis, index, (u0, u1, v0, v1))
    note = ("the voxels under the brush within the range are already this class" if region.any()
            else f"no voxel under the brush is within [{lo:g}, {hi:g}]")
    return _diff(labels, box, np.expand_dims(new, axis), "range brush", note)


def fill_by_intensity(labels: np.ndarray, scan: np.ndarray, seed, value: int, tolerance: float, *,
                      axis: int | None = None, cap: int = WAND_CAP, overwrite: bool = True) -> LabelChange:
    """Magic wand: the voxels connected (faces) to `seed` (z, y, x) whose scan value is within
    `tolerance` of the seed's get `value`; in 3-D, or in the plane across `axis` through the seed.
    A region of more than `cap` voxels paints nothing and says so."""
    _check_scan(labels, scan)
    seed = _checked_seed(seed, labels.shape)
    target = float(scan[seed])
    domain = (slice(None),) * 3
    if axis is not None:
        domain = tuple(slice(s, s + 1) if a == axis else slice(None) for a, s in enumerate(seed))

    def inside(box):
        return np.abs(scan[domain][box].astype(np.float64) - target) <= tolerance

    local = tuple(0 if axis == a else s for a, s in enumerate(seed))
    comp, box, size = _component(inside, scan[domain].shape, local, cap)
    if comp is None:
        return LabelChange.nothing("wand", f"stopped at the cap: more than {cap:,} connected voxels within "
                                   f"{tolerance:g} of {target:g}; nothing painted (narrow the tolerance)")
    box = tuple(slice(d.start + b.start, d.start + b.stop) if d.start is not None else b
                for d, b in zip(domain, box))
    old = labels[box]
    region = comp if overwrite else comp & (old == 0)
    return _diff(labels, _to_box(box), np.where(region, np.asarray(value, old.dtype), old), "wand",
                 f"{size:,} voxels, all already this class")


def remove_island(labels: np.ndarray, seed) -> LabelChange:
    """Delete the connected component (3-D, faces) of the class at voxel `seed` (z, y, x)."""
    seed = _checked_seed(seed, labels.shape)
    c = labels[seed]
    if c == 0:
        return LabelChange.nothing("island", "that voxel is background: click a labelled region")
    comp, box, _ = _component(lambda b: labels[b] == c, labels.shape, seed, None)
    old = labels[box]
    return _diff(labels, _to_box(box), np.where(comp, np.zeros((), old.dtype), old), "island", "")


def accept_prediction(labels: np.ndarray, pred: np.ndarray, *, axis: int | None = None,
                      index: int | None = None, cls: int | None = None) -> LabelChange:
    """Take the prediction for the whole scan, one plane (axis, index), one structure (`cls`:
    its voxels become the predicted ones, its other voxels background), or one structure in one
    plane."""
    if pred.shape != labels.shape:
        raise ValueError(f"prediction {pred.shape} and labels {labels.shape} differ in shape")
    box = (0, labels.shape[0], 0, labels.shape[1], 0, labels.shape[2])
    if axis is not None:
        u, v = plane_axes(axis)
        box = _plane_box(axis, index, (0, labels.shape[u], 0, labels.shape[v]))
    sl = _slices(box)
    old, new = labels[sl], pred[sl].astype(labels.dtype)
    if cls is not None:
        kept = np.where(old == cls, np.zeros((), old.dtype), old)
        new = np.where(new == cls, np.asarray(cls, old.dtype), kept)
    return _diff(labels, box, new, "accept", "the labels already match the prediction there")


# -- helpers ------------------------------------------------------------------------------------
def _component(inside: Callable[[tuple], np.ndarray], shape, seed, cap: int | None, start: int = 32):
    """(component mask, its box as slices, size) of the face-connected region of `inside` holding
    `seed`, searched in a box grown until the region no longer touches an inner face; (None, box,
    size) once it exceeds `cap`."""
    reach = start
    while True:
        lo = [max(s - reach, 0) for s in seed]
        hi = [min(s + reach + 1, n) for s, n in zip(seed, shape)]
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        regions, _ = ndimage.label(inside(box))
        comp = regions == regions[tuple(s - a for s, a in zip(seed, lo))]
        size = int(np.count_nonzero(comp))
        if cap is not None and size > cap:
            return None, box, size
        open_faces = [(a, 0) for a in range(len(shape)) if lo[a] > 0] + \
                     [(a, -1) for a in range(len(shape)) if hi[a] < shape[a]]
        if not any(np.take(comp, i, axis=a).any() for a, i in open_faces):
            return comp, box, size
        reach *= 4


def _diff(labels, box: Box, new: np.ndarray, what: str, note_if_none: str) -> LabelChange:
    """The change that writes `new` into `box`, cropped to the voxels that differ."""
    old = labels[_slices(box)]
    differs = old != new
    if not differs.any():
        return LabelChange.nothing(what, note_if_none)
    crop = tuple(slice(int(f[0]), int(f[-1]) + 1) for f in
                 (np.flatnonzero(differs.any(axis=tuple(o for o in range(3) if o != a))) for a in range(3)))
    cropped = tuple(v for s, c in zip(_slices(box), crop) for v in (s.start + c.start, s.start + c.stop))
    return LabelChange(cropped, old[crop].copy(), np.array(new[crop], dtype=labels.dtype), what)


def _planes_change(labels, axis, planes: dict[int, np.ndarray], what: str, note: str) -> LabelChange:
    """The change that replaces planes {index: new plane} across `axis`."""
    k0, k1 = min(planes), max(planes) + 1
    box = [0, labels.shape[0], 0, labels.shape[1], 0, labels.shape[2]]
    box[2 * axis:2 * axis + 2] = k0, k1
    new = labels[_slices(box)].copy()
    for k, plane in planes.items():
        plane_of(new, axis, k - k0, (False, False))[...] = plane
    return _diff(labels, tuple(box), new, what, note)


def _grown_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, mask.shape[0])),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, mask.shape[1])))


def _plane_box(axis: int, index: int, uv: tuple[int, int, int, int]) -> Box:
    box = [0] * 6
    box[2 * axis:2 * axis + 2] = int(index), int(index) + 1
    u, v = plane_axes(axis)
    box[2 * u:2 * u + 2], box[2 * v:2 * v + 2] = uv[:2], uv[2:]
    return tuple(int(b) for b in box)


def _slices(box) -> tuple[slice, slice, slice]:
    return slice(box[0], box[1]), slice(box[2], box[3]), slice(box[4], box[5])


def _to_box(slices) -> Box:
    return tuple(int(v) for s in slices for v in (s.start, s.stop))


def _checked_seed(seed, shape) -> tuple[int, int, int]:
    seed = tuple(int(s) for s in seed)
    if len(seed) != 3 or not all(0 <= s < n for s, n in zip(seed, shape)):
        raise ValueError(f"voxel {seed} is outside the volume {tuple(shape)}")
    return seed


def _check_scan(labels: np.ndarray, scan: np.ndarray) -> None:
    if scan.shape != labels.shape:
        raise ValueError(f"scan {scan.shape} and labels {labels.shape} differ in shape "
                         "(give one channel of a multi-channel scan)")
