"""Overlap and boundary metrics of label maps, per class, in millimetres (2-D and 3-D).

Definitions (those of DeepMind's surface-distance, which this reproduces; the tests compare):
- Surfaces are the corners of the voxel grid whose 2x2x2 (2x2) neighbourhood is partly inside a
  mask, each weighted by the area (in 2-D: the contour length) of its marching-cubes surface
  element at the voxel spacing (`surfel_table`). Distances are Euclidean, in mm, from each
  element of one surface to the nearest element of the other.
- NSD (normalised surface distance, "surface Dice" at a tolerance): the area of both surfaces
  within `tolerance_mm` of the other surface, over the area of both surfaces.
- HD95: the larger of the two directed 95th percentiles, each the smallest distance within which
  95% of that surface's area lies (area-weighted, no interpolation).
- ASSD (average symmetric surface distance): the area-weighted mean distance over both surfaces
  together.
- Dice: 2|T & P| / (|T| + |P|) over voxels.
Empty classes: absent from both truth and prediction, every metric is NaN; present in only one,
Dice and NSD are 0 and HD95 and ASSD are NaN.

Each class is cropped to the bounding box of its voxels in truth and prediction before its
surfaces are found (exact: both surfaces lie in it), and the nearest surface element is found
with a k-d tree of the other surface's elements, so the cost follows the surface's size rather
than the volume's.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from .surfel_table import KERNEL_2D, KERNEL_3D, contour_lengths, surface_areas

NAN = float("nan")


@dataclass(frozen=True)
class SurfaceDistances:
    """Each surface element's distance to the other surface (mm; inf when that one is empty)
    and its area (mm^2; contour length in mm in 2-D), ascending by distance."""
    truth_to_pred: np.ndarray
    truth_areas: np.ndarray
    pred_to_truth: np.ndarray
    pred_areas: np.ndarray


@dataclass(frozen=True)
class ClassMetrics:
    """One class in one case. Distances in the spacing's unit (mm; pixels for unit spacing)."""
    dice: float
    nsd: float
    hd95: float
    assd: float
    voxels_truth: int
    voxels_pred: int

    @property
    def empty(self) -> str:
        """Where the class is absent: "both", "truth", "prediction" or ""."""
        if not self.voxels_truth:
            return "both" if not self.voxels_pred else "truth"
        return "prediction" if not self.voxels_pred else ""


def label_metrics(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float],
                  tolerance_mm: float = 1.0, classes: Iterable[int] | None = None) -> dict[int, ClassMetrics]:
    """Metrics of each class of two integer label maps of one shape (2-D or 3-D; 0 is background)
    at `spacing` (array order). `classes`: the labels to score (default: every label > 0 in
    either map); one absent from both gets the both-empty row."""
    truth, pred = np.asarray(truth), np.asarray(pred)
    if truth.shape != pred.shape:
        raise ValueError(f"label maps differ in shape: {truth.shape} and {pred.shape}")
    boxes_t, boxes_p = _boxes(truth), _boxes(pred)
    if classes is None:
        classes = [i + 1 for i in range(max(len(boxes_t), len(boxes_p)))
                   if _box(boxes_t, i + 1) is not None or _box(boxes_p, i + 1) is not None]
    out = {}
    for c in classes:
        box = _union(_box(boxes_t, c), _box(boxes_p, c))
        out[int(c)] = (ClassMetrics(NAN, NAN, NAN, NAN, 0, 0) if box is None
                       else binary_metrics(truth[box] == c, pred[box] == c, spacing, tolerance_mm))
    return out


def binary_metrics(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float],
                   tolerance_mm: float = 1.0) -> ClassMetrics:
    """Metrics of two boolean masks of one shape (see the module's definitions)."""
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    n_t, n_p = int(np.count_nonzero(truth)), int(np.count_nonzero(pred))
    if not n_t and not n_p:
        return ClassMetrics(NAN, NAN, NAN, NAN, 0, 0)
    if not n_t or not n_p:
        return ClassMetrics(0.0, 0.0, NAN, NAN, n_t, n_p)
    dice = 2 * int(np.count_nonzero(truth & pred)) / (n_t + n_p)
    sd = surface_distances(truth, pred, spacing)
    return ClassMetrics(dice, surface_dice(sd, tolerance_mm), robust_hausdorff(sd, 95), average_surface_distance(sd),
                        n_t, n_p)


def surface_distances(truth: np.ndarray, pred: np.ndarray, spacing: Sequence[float]) -> SurfaceDistances:
    """Distances between the surfaces of two boolean masks (2-D or 3-D) at `spacing`, cropped
    to the bounding box of both."""
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    if truth.shape != pred.shape or truth.ndim not in (2, 3) or len(spacing) != truth.ndim:
        raise ValueError(f"need two 2-D or 3-D masks of one shape and a spacing per axis, got "
                         f"{truth.shape}, {pred.shape} and {tuple(spacing)}")
    spacing = tuple(float(s) for s in spacing)
    box = _union(_bbox(truth), _bbox(pred))
    if box is not None:
        truth, pred = truth[box], pred[box]
    table = surface_areas(spacing) if truth.ndim == 3 else contour_lengths(spacing)
    code_t, code_p = _codes(truth), _codes(pred)
    full = 255 if truth.ndim == 3 else 15
    edge_t = (code_t != 0) & (code_t != full)
    edge_p = (code_p != 0) & (code_p != full)
    d_tp = _distances(edge_t, edge_p, spacing)
    d_pt = _distances(edge_p, edge_t, spacing)
    return SurfaceDistances(*_ascending(d_tp, table[code_t[edge_t]]), *_ascending(d_pt, table[code_p[edge_p]]))


def surface_dice(sd: SurfaceDistances, tolerance_mm: float) -> float:
    """NSD: the share of both surfaces' area within `tolerance_mm` of the other surface."""
    close = (np.sum(sd.truth_areas[sd.truth_to_pred <= tolerance_mm])
             + np.sum(sd.pred_areas[sd.pred_to_truth <= tolerance_mm]))
    return float(close / (np.sum(sd.truth_areas) + np.sum(sd.pred_areas)))


def robust_hausdorff(sd: SurfaceDistances, percent: float = 95) -> float:
    """The larger of the two directed `percent` percentiles of the distances, area-weighted."""
    return float(max(_percentile(sd.truth_to_pred, sd.truth_areas, percent),
                     _percentile(sd.pred_to_truth, sd.pred_areas, percent)))


def average_surface_distance(sd: SurfaceDistances) -> float:
    """ASSD: the area-weighted mean distance over both surfaces together."""
    total = np.sum(sd.truth_to_pred * sd.truth_areas) + np.sum(sd.pred_to_truth * sd.pred_areas)
    return float(total / (np.sum(sd.truth_areas) + np.sum(sd.pred_areas)))


def _percentile(distances: np.ndarray, areas: np.ndarray, percent: float) -> float:
    if not len(distances):
        return math.inf
    cumulative = np.cumsum(areas) / np.sum(areas)
    return distances[min(int(np.searchsorted(cumulative, percent / 100.0)), len(distances) - 1)]


def _codes(mask: np.ndarray) -> np.ndarray:
    """The neighbourhood code of every voxel corner: shape + 1 per axis; corner i lies between
    voxels i - 1 and i."""
    padded = np.pad(mask.view(np.uint8), 1)
    shape = tuple(n + 1 for n in mask.shape)
    kernel = KERNEL_3D if mask.ndim == 3 else KERNEL_2D
    code = np.zeros(shape, np.uint8)
    for offset in itertools.product((0, 1), repeat=mask.ndim):
        window = padded[tuple(slice(o, o + n) for o, n in zip(offset, shape))]
        code |= window * kernel[offset]
    return code


def _distances(source: np.ndarray, target: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    """Distance in mm from each True corner of `source` (in np.nonzero order) to the nearest
    True corner of `target` (inf without one), computed as scipy's distance_transform_edt
    computes it from the nearest corner's offset."""
    src = np.argwhere(source)
    out = np.zeros(len(src))
    if not target.any():
        out[:] = math.inf
        return out
    far = ~target[tuple(src.T)]  # a corner on both surfaces is at distance 0
    if far.any():
        dst = np.argwhere(target)
        scale = np.asarray(spacing)
        _, nearest = cKDTree(dst * scale).query(src[far] * scale)
        offsets = (dst[nearest] - src[far]) * scale
        squared = offsets[:, 0] * offsets[:, 0]
        for axis in range(1, offsets.shape[1]):
            squared += offsets[:, axis] * offsets[:, axis]
        out[far] = np.sqrt(squared)
    return out


def _ascending(distances: np.ndarray, areas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by distance, then area (surface-distance's order, so cumulative sums agree)."""
    order = np.lexsort((areas, distances))
    return distances[order], areas[order]


def _boxes(labels: np.ndarray) -> list:
    """scipy's find_objects boxes (index label - 1) of the labels > 0."""
    if labels.dtype.kind == "b":
        labels = labels.view(np.uint8)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    return ndimage.find_objects(labels) if labels.size else []


def _box(boxes: list, label: int):
    return boxes[label - 1] if 0 < label <= len(boxes) else None


def _bbox(mask: np.ndarray):
    boxes = ndimage.find_objects(mask.view(np.uint8))
    return boxes[0] if boxes else None


def _union(a, b):
    """The smallest box (tuple of slices) holding both; None when both are None."""
    if a is None or b is None:
        return a if b is None else b
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))
