"""Correcting a scan in any plane, without Qt: ScanMask (an EditableMask over the canonical (Z, Y, X)
labels, whose edits are 3-D boxes) and ScanEditor (the three-plane viewer's tools: brush, eraser,
intensity-range brush, fill, magic wand, remove island, accept the prediction, interpolate). Every
finished tool use is one volume_tools.LabelChange, recorded as one Edit of the review's history, so
undo and redo go across planes and items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import paint, volume_tools
from .history import Edit
from .labels import EditableMask
from .viewer_state import plane_axes, plane_of
from .volume_tools import LabelChange

SCAN_TOOLS = ("brush", "eraser", "range", "fill", "wand", "island")
STROKE_TOOLS = ("brush", "eraser", "range")
ACCEPT_SCOPES = ("slice", "structure", "scan")


@dataclass
class ScanMask(EditableMask):
    """A scan's labels being corrected, in the canonical (Z, Y, X) order (axis 0: saving writes
    them back in the scan's own geometry as the review's 2-D corrections do). An Edit's box is
    (z0, z1, y0, y1, x0, x1) and its before/after are 3-D blocks; a 4-box is an axial plane's."""

    def record(self, change: LabelChange) -> Edit:
        """A change already written into `labels`, as one history Edit (plane: its first z)."""
        self._changed(change.box)
        self.strokes += 1
        return Edit(self.key, change.box[0], change.box, change.before, change.after, change.what)

    def put(self, edit: Edit, after: bool) -> None:
        if len(edit.box) == 4:
            return super().put(edit, after)
        z0, z1, y0, y1, x0, x1 = edit.box
        self.labels[z0:z1, y0:y1, x0:x1] = edit.after if after else edit.before
        self._changed(edit.box)

    def _changed(self, box) -> None:
        self.dirty.update(range(box[0], box[1]))
        self.version += 1


@dataclass
class ScanTool:
    tool: str = "brush"
    radius: int = 4            # voxels
    label: int = 1             # the class painted
    lo: float = -100.0         # range brush: paint only where the scan is within [lo, hi]
    hi: float = 300.0
    tolerance: float = 50.0    # wand: voxels within this of the clicked value (scan units)
    wand_3d: bool = True       # wand in 3-D, else in the clicked plane


class ScanEditor:
    """The tools over a ScanMask and the scan's values (its own units; same shape). `press`,
    `drag` and `release` take a plane (axis, index) and in-plane array positions (u, v) as
    ScanGeometry.to_plane gives them; a finished tool use returns its LabelChange, already
    written into the labels (None when nothing changed; `note` says why)."""

    def __init__(self, mask: ScanMask, values: np.ndarray):
        if values.shape != mask.labels.shape:
            raise ValueError(f"scan {values.shape} and labels {mask.labels.shape} differ in shape")
        self.mask, self.values = mask, values
        self.tool = ScanTool()
        self.note = ""
        self._stroke: dict | None = None

    @property
    def labels(self) -> np.ndarray:
        return self.mask.labels

    def _value(self) -> int:
        return 0 if self.tool.tool == "eraser" else int(self.tool.label)

    # -- strokes and clicks -------------------------------------------------------------------
    def press(self, axis: int, index: int, u: float, v: float) -> LabelChange | tuple | None:
        """Start a stroke (brush, eraser, range brush: returns the changed in-plane box) or do a
        click tool (fill, wand, island: returns its LabelChange)."""
        tool, self.note = self.tool.tool, ""
        if tool in STROKE_TOOLS:
            plane = plane_of(self.labels, axis, index, (False, False))
            self._stroke = {"axis": axis, "index": index, "before": plane.copy(), "box": None,
                            "last": (u, v), "swept": np.zeros(plane.shape, bool)}
            return self.drag(u, v)
        seed = self._voxel(axis, index, u, v)
        if seed is None:
            return None
        if tool == "fill":
            change = self._fill(axis, index, seed)
        elif tool == "wand":
            t = self.tool
            change = volume_tools.fill_by_intensity(self.labels, self.values, seed, self._value(), t.tolerance,
                                                    axis=None if t.wand_3d else axis)
        else:
            change = volume_tools.remove_island(self.labels, seed)
        return self.apply(change)

    def drag(self, u: float, v: float) -> tuple | None:
        """Paint from the stroke's last point to (u, v): the in-plane box (u0, u1, v0, v1) changed."""
        s = self._stroke
        if s is None:
            return None
        plane = plane_of(self.labels, s["axis"], s["index"], (False, False))
        swept = np.zeros(plane.shape, np.uint8)
        box = paint.line(swept, s["last"], (u, v), int(self.tool.radius), 1)
        s["last"] = (u, v)
        if box is None:
            return None
        u0, u1, v0, v1 = box
        region = swept[u0:u1, v0:v1].astype(bool)
        if self.tool.tool == "range":
            values = plane_of(self.values, s["axis"], s["index"], (False, False))[u0:u1, v0:v1]
            region &= (values >= self.tool.lo) & (values <= self.tool.hi)
        plane[u0:u1, v0:v1][region] = self._value()
        s["box"] = paint.union(s["box"], box)
        return box

    def release(self) -> LabelChange | None:
        """End the stroke: its LabelChange (already in the labels), None when nothing changed."""
        s, self._stroke = self._stroke, None
        if s is None or s["box"] is None:
            return None
        u0, u1, v0, v1 = s["box"]
        axis, index = s["axis"], s["index"]
        before = s["before"][u0:u1, v0:v1]
        after = plane_of(self.labels, axis, index, (False, False))[u0:u1, v0:v1].copy()
        if np.array_equal(before, after):
            self.note = ("no voxel under the stroke is within "
                         f"[{self.tool.lo:g}, {self.tool.hi:g}]" if self.tool.tool == "range" else "")
            return None
        box = volume_tools._plane_box(axis, index, (u0, u1, v0, v1))
        what = {"range": "range brush"}.get(self.tool.tool, self.tool.tool)
        return LabelChange(box, np.expand_dims(before, axis), np.expand_dims(after, axis), what)

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    def _fill(self, axis: int, index: int, seed) -> LabelChange:
        """Fill the region of equal labels under the click in its plane (e.g. an outline's inside)."""
        plane = plane_of(self.labels, axis, index, (False, False))
        u, v = (seed[a] for a in plane_axes(axis))
        region = paint.fill_region(plane, u, v)
        new = np.where(region, np.asarray(self._value(), plane.dtype), plane)
        box = volume_tools._plane_box(axis, index, (0, plane.shape[0], 0, plane.shape[1]))
        return volume_tools._diff(self.labels, box, np.expand_dims(new, axis), "fill", "already this class")

    def _voxel(self, axis: int, index: int, u: float, v: float) -> tuple[int, int, int] | None:
        voxel = [0, 0, 0]
        voxel[axis] = int(index)
        for a, pos in zip(plane_axes(axis), (u, v)):
            voxel[a] = int(round(pos))
            if not 0 <= voxel[a] < self.labels.shape[a]:
                return None
        return tuple(voxel)

    # -- whole-structure tools ----------------------------------------------------------------
    def accept(self, scope: str, axis: int = 0, index: int = 0) -> LabelChange | None:
        """Take the prediction for the slice (axis, index), the painted class (`structure`) or
        the whole scan."""
        if self.mask.pred is None:
            self.note = "there is no prediction to accept"
            return None
        if scope not in ACCEPT_SCOPES:
            raise ValueError(f"unknown scope {scope!r}: use {', '.join(ACCEPT_SCOPES)}")
        plane = dict(axis=axis, index=index) if scope == "slice" else {}
        cls = self.tool.label if scope == "structure" else None
        return self.apply(volume_tools.accept_prediction(self.labels, self.mask.pred, cls=cls, **plane))

    def apply(self, change: LabelChange) -> LabelChange | None:
        """Write a computed change (refused when the labels changed since: ValueError)."""
        if not change:
            self.note = change.note
            return None
        change.apply(self.labels)
        return change


def interpolate_task(labels: np.ndarray, axis: int, cls: int, spacing, *, progress, should_stop) -> LabelChange:
    """Class `cls` interpolated between its labelled planes across `axis` of a snapshot of the
    labels, for the task runner (not written: ScanEditor.apply writes it, or refuses it when the
    labels changed meanwhile)."""
    return volume_tools.interpolate_slices(labels, axis, classes=[cls], spacing=spacing, progress=progress,
                                           should_stop=should_stop)
