"""The three-plane scan viewer's state, without Qt: the scan's geometry, one shared cursor (the
point, window/level, overlays) and one PlaneView per plane observing it, as napari's
`components/dims.py` (a world point and its slice steps) and glue's `viewers/image/state.py`
(per-viewer state with callbacks) do it.

Axes are those of segstudio's canonical (Z, Y, X) arrays (see io/volume.py): a plane across
axis 0 is axial, 1 coronal, 2 sagittal (data/items.py AXES). A plane's rows and columns are the
two other array axes in order; `plane_of` flips them for display so the picture is radiological
(superior, else anterior, up; the patient's right, else anterior, on the left). Display
coordinates are continuous: pixel (r, c) covers [r, r + 1) x [c, c + 1), as pyqtgraph draws it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, NamedTuple

import nibabel as nib
import numpy as np

from ..preprocess.windowing import WINDOW_PRESETS, percentile_window
from ..io.volume import CANONICAL_AXES

OVERLAYS = ("prediction", "truth", "compare", "uncertainty")
PLANE_NAMES = {"S": "axial", "A": "coronal", "R": "sagittal"}  # by the axis a plane is across
UP_LEFT = frozenset("SAR")  # the letter drawn up (rows) or left (columns) of each axis pair
OPPOSITE = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}
KEY_STEPS = {"Right": 1, "Left": -1, "PageUp": 1, "PageDown": -1}  # slice steps of keys


def plane_axes(axis: int) -> tuple[int, int]:
    """The array axes of a plane's rows and columns."""
    return tuple(a for a in range(3) if a != axis)


def plane_of(array: np.ndarray, axis: int, index: int,
             flips: tuple[bool, bool] | None = None) -> np.ndarray:
    """Slice `index` across spatial `axis` of a (Z, Y, X) or (C, Z, Y, X) array, with its rows
    and/or columns reversed by `flips` (default: data/items.py take_slice's, superior up in
    coronal and sagittal planes). A view, never a copy: a memory-mapped scan stays on disk."""
    flip_rows, flip_cols = flips if flips is not None else (axis != 0, False)
    key = [slice(None)] * array.ndim
    key[array.ndim - 3 + axis] = int(index)
    return array[tuple(key)][..., ::-1 if flip_rows else 1, ::-1 if flip_cols else 1]


class PlaneLetters(NamedTuple):
    top: str
    bottom: str
    left: str
    right: str


@dataclass(frozen=True, eq=False)
class ScanGeometry:
    """Where a (Z, Y, X) array's voxels are: its shape, voxel size (mm, array order), affine
    (array indices -> RAS+ mm) and the direction each array axis runs to ("SPL" canonical)."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: np.ndarray
    axcodes: str = "SPL"

    @classmethod
    def from_affine(cls, shape, affine: np.ndarray) -> ScanGeometry:
        affine = np.asarray(affine, dtype=np.float64)
        spacing = tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0))
        return cls(tuple(int(n) for n in shape[-3:]), spacing, affine, "".join(nib.aff2axcodes(affine)))

    @classmethod
    def from_volume(cls, volume) -> ScanGeometry:
        """The geometry of an io.volume.Volume."""
        return cls.from_affine(volume.shape, volume.affine)

    @classmethod
    def canonical(cls, shape, spacing=(1.0, 1.0, 1.0)) -> ScanGeometry:
        """A canonical array with `spacing` (mm) at the origin."""
        return cls.from_affine(shape, CANONICAL_AXES @ np.diag([*spacing, 1.0]))

    def plane_name(self, axis: int) -> str:
        """"axial", "coronal" or "sagittal": what a plane across `axis` shows."""
        letter = self.axcodes[axis]
        return PLANE_NAMES.get(letter) or PLANE_NAMES[OPPOSITE[letter]]

    def flips(self, axis: int) -> tuple[bool, bool]:
        """Whether a plane's rows and columns are reversed for display."""
        return tuple(self.axcodes[a] in UP_LEFT for a in plane_axes(axis))

    def plane(self, array: np.ndarray, axis: int, index: int) -> np.ndarray:
        """A plane of `array` ((Z, Y, X) or (C, Z, Y, X), this geometry) as displayed: a view."""
        return plane_of(array, axis, index, self.flips(axis))

    def plane_shape(self, axis: int) -> tuple[int, int]:
        return tuple(self.shape[a] for a in plane_axes(axis))

    def pixel_mm(self, axis: int) -> tuple[float, float]:
        """A display pixel's (height, width) in mm."""
        return tuple(self.spacing[a] for a in plane_axes(axis))

    def aspect(self, axis: int) -> float:
        """A display pixel's height over its width: draw it so and the plane is to scale."""
        h, w = self.pixel_mm(axis)
        return h / w

    def extent_mm(self, axis: int) -> tuple[float, float]:
        """The plane's (height, width) in mm."""
        return tuple(n * s for n, s in zip(self.plane_shape(axis), self.pixel_mm(axis)))

    def letters(self, axis: int) -> PlaneLetters:
        """The patient directions at the plane's edges as displayed (R/L, A/P, S/I)."""
        (rows, cols), (flip_rows, flip_cols) = plane_axes(axis), self.flips(axis)
        r, c = self.axcodes[rows], self.axcodes[cols]
        top, bottom = (r, OPPOSITE[r]) if flip_rows else (OPPOSITE[r], r)
        left, right = (c, OPPOSITE[c]) if flip_cols else (OPPOSITE[c], c)
        return PlaneLetters(top, bottom, left, right)

    def to_voxel(self, axis: int, index: int, row: float, col: float) -> tuple[int, int, int]:
        """The voxel (z, y, x) under display position (row, col) of plane `index` across `axis`
        (clipped to the volume)."""
        voxel = [0, 0, 0]
        voxel[axis] = int(index)
        for a, pos, flip in zip(plane_axes(axis), (row, col), self.flips(axis)):
            i = min(max(int(np.floor(pos)), 0), self.shape[a] - 1)
            voxel[a] = self.shape[a] - 1 - i if flip else i
        return tuple(voxel)

    def to_plane(self, axis: int, row: float, col: float) -> tuple[float, float]:
        """Display position (row, col) as continuous in-plane array coordinates (u, v), voxel
        centres at whole numbers (what the paint tools take)."""
        return tuple(self.shape[a] - 0.5 - pos if flip else pos - 0.5
                     for a, pos, flip in zip(plane_axes(axis), (row, col), self.flips(axis)))

    def to_display(self, axis: int, voxel) -> tuple[int, int]:
        """The display (row, col) pixel of voxel (z, y, x) in a plane across `axis`."""
        return tuple(self.shape[a] - 1 - int(voxel[a]) if flip else int(voxel[a])
                     for a, flip in zip(plane_axes(axis), self.flips(axis)))

    def world(self, voxel) -> np.ndarray:
        """RAS+ mm of continuous voxel coordinates (z, y, x)."""
        return self.affine[:3, :3] @ np.asarray(voxel, dtype=np.float64) + self.affine[:3, 3]

    def voxel(self, world) -> np.ndarray:
        """Continuous voxel coordinates (z, y, x) of a RAS+ point in mm."""
        return np.linalg.solve(self.affine[:3, :3], np.asarray(world, dtype=np.float64) - self.affine[:3, 3])


@dataclass(frozen=True)
class Change:
    """What changed, for an observer: field names, and for "point" the axes whose slice index
    moved."""
    fields: frozenset[str]
    axes: frozenset[int] = frozenset()


class Observable:
    """A tiny observer list: `connect(fn)`; fn(Change) after each change, once per `batch()`."""

    def __init__(self):
        self._observers: list[Callable[[Change], None]] = []
        self._pending: Change | None = None
        self._batching = 0

    def connect(self, fn: Callable[[Change], None]) -> None:
        self._observers.append(fn)

    @contextlib.contextmanager
    def batch(self):
        """Changes inside are told to the observers once, together, at the end."""
        self._batching += 1
        try:
            yield self
        finally:
            self._batching -= 1
            if not self._batching and self._pending is not None:
                change, self._pending = self._pending, None
                self._notify(change)

    def _emit(self, *fields: str, axes=()) -> None:
        change = Change(frozenset(fields), frozenset(axes))
        if self._batching:
            old = self._pending
            self._pending = change if old is None else Change(old.fields | change.fields,
                                                              old.axes | change.axes)
        else:
            self._notify(change)

    def _notify(self, change: Change) -> None:
        for fn in list(self._observers):
            fn(change)


class CursorState(Observable):
    """What the three planes share: the point (world mm; its voxel `index` gives each plane's
    slice), window/level in the scan's own units (HU for CT), and how overlays are drawn.
    Fields: "point", "window", "overlay" (mode, per-class visibility, opacity, filled)."""

    def __init__(self, geometry: ScanGeometry, n_classes: int = 2,
                 window: tuple[float, float] = WINDOW_PRESETS["abdomen"]):
        super().__init__()
        self.geometry = geometry
        self._voxel = (np.asarray(geometry.shape) // 2).astype(np.float64)  # the middle voxel
        self.index = self._index(self._voxel)
        self.width, self.level = float(window[0]), float(window[1])
        self.preset = ""
        self.overlay = "prediction"
        self.visible = (True,) * n_classes  # per class; [0] is the background
        self.opacity = 0.5
        self.filled = True  # False: contours

    # -- the point --------------------------------------------------------------------------
    @property
    def voxel(self) -> np.ndarray:
        """Continuous voxel coordinates (z, y, x) of the point."""
        return self._voxel.copy()

    @property
    def point(self) -> np.ndarray:
        """The point in RAS+ mm."""
        return self.geometry.world(self._voxel)

    def set_voxel(self, voxel) -> None:
        """Move the point to continuous voxel coordinates (clipped to the volume)."""
        voxel = np.clip(np.asarray(voxel, dtype=np.float64), 0, np.asarray(self.geometry.shape) - 1)
        if np.array_equal(voxel, self._voxel):
            return
        index = self._index(voxel)
        moved = [a for a in range(3) if index[a] != self.index[a]]
        self._voxel, self.index = voxel, index
        self._emit("point", axes=moved)

    def set_index(self, axis: int, index: int) -> None:
        """Show slice `index` across `axis` (clipped); the point moves to its centre."""
        voxel = self._voxel.copy()
        voxel[axis] = index
        self.set_voxel(voxel)

    def step(self, axis: int, delta: int) -> bool:
        """Step the slice across `axis` by `delta`; False at the end of the volume."""
        before = self.index[axis]
        self.set_index(axis, before + int(delta))
        return self.index[axis] != before

    @staticmethod
    def _index(voxel: np.ndarray) -> tuple[int, int, int]:
        return tuple(int(i) for i in np.floor(voxel + 0.5))

    # -- window and overlays ----------------------------------------------------------------
    @property
    def window_range(self) -> tuple[float, float]:
        """The values drawn black and white."""
        return self.level - self.width / 2, self.level + self.width / 2

    def set_window(self, width: float, level: float, preset: str = "") -> None:
        width = max(float(width), 1e-6)
        if (width, float(level), preset) != (self.width, self.level, self.preset):
            self.width, self.level, self.preset = width, float(level), preset
            self._emit("window")

    def set_preset(self, name: str) -> None:
        """A CT preset of data/windowing.py WINDOW_PRESETS ("brain", "lung", "abdomen"...)."""
        if name not in WINDOW_PRESETS:
            raise ValueError(f"unknown window preset {name!r}: use {', '.join(WINDOW_PRESETS)}")
        self.set_window(*WINDOW_PRESETS[name], preset=name)

    def set_overlay(self, mode: str) -> None:
        if mode not in OVERLAYS:
            raise ValueError(f"unknown overlay {mode!r}: use {', '.join(OVERLAYS)}")
        self._set("overlay", mode)

    def set_visible(self, cls: int, visible: bool) -> None:
        flags = list(self.visible)
        flags[cls] = bool(visible)
        self._set("visible", tuple(flags))

    def set_opacity(self, opacity: float) -> None:
        self._set("opacity", min(max(float(opacity), 0.0), 1.0))

    def set_filled(self, filled: bool) -> None:
        self._set("filled", bool(filled))

    def _set(self, name: str, value) -> None:
        if getattr(self, name) != value:
            setattr(self, name, value)
            self._emit("overlay")


class PlaneView(Observable):
    """One plane of the viewer: the axis it shows and its camera (zoom about the fitted view,
    the display position at the view's centre), observing the shared cursor. It tells its own
    observers what to redraw: "slice" (its index moved), "crosshair", "window", "overlay",
    "camera", "layout" (maximised or not)."""

    def __init__(self, cursor: CursorState, axis: int):
        super().__init__()
        self.cursor, self.axis = cursor, axis
        self.geometry = cursor.geometry
        self.zoom = 1.0
        self.center: tuple[float, float] | None = None  # None: the plane's middle
        self.maximised = False
        cursor.connect(self._on_cursor)

    @property
    def index(self) -> int:
        return self.cursor.index[self.axis]

    @property
    def name(self) -> str:
        return self.geometry.plane_name(self.axis)

    @property
    def letters(self) -> PlaneLetters:
        return self.geometry.letters(self.axis)

    def image(self, array: np.ndarray) -> np.ndarray:
        """This plane of `array` (the scan, labels or an overlay) as displayed: a view."""
        return self.geometry.plane(array, self.axis, self.index)

    def crosshair(self) -> tuple[float, float]:
        """The point's display position in this plane (the centre of its voxel)."""
        row, col = self.geometry.to_display(self.axis, self.cursor.index)
        return row + 0.5, col + 0.5

    def click(self, row: float, col: float) -> None:
        """Move the point to the voxel under (row, col); the other planes follow."""
        voxel = self.cursor.voxel
        clicked = self.geometry.to_voxel(self.axis, self.index, row, col)
        for a in plane_axes(self.axis):
            voxel[a] = clicked[a]
        self.cursor.set_voxel(voxel)

    def step(self, delta: int) -> bool:
        """The wheel, arrow keys and PgUp/PgDn (KEY_STEPS): step this plane."""
        return self.cursor.step(self.axis, delta)

    # -- camera -----------------------------------------------------------------------------
    def screen_transform(self, width: float, height: float) -> tuple[float, float, float, float]:
        """(sx, sy, ox, oy): display (row, col) is at screen x = ox + col * sx, y = oy + row * sy
        in a width x height widget; sy / sx is the pixel aspect, so the plane is to scale."""
        h_mm, w_mm = self.geometry.extent_mm(self.axis)
        mm = min(width / w_mm, height / h_mm) * self.zoom  # screen pixels per mm
        row_mm, col_mm = self.geometry.pixel_mm(self.axis)
        sx, sy = mm * col_mm, mm * row_mm
        crow, ccol = self.center if self.center is not None else self._middle()
        return sx, sy, width / 2 - ccol * sx, height / 2 - crow * sy

    def to_screen(self, row: float, col: float, width: float, height: float) -> tuple[float, float]:
        sx, sy, ox, oy = self.screen_transform(width, height)
        return ox + col * sx, oy + row * sy

    def from_screen(self, x: float, y: float, width: float, height: float) -> tuple[float, float]:
        """The display (row, col) under screen position (x, y)."""
        sx, sy, ox, oy = self.screen_transform(width, height)
        return (y - oy) / sy, (x - ox) / sx

    def zoom_at(self, factor: float, row: float, col: float) -> None:
        """Zoom by `factor` keeping display position (row, col) where it is (Ctrl+wheel)."""
        zoom = min(max(self.zoom * factor, 0.1), 100.0)
        crow, ccol = self.center if self.center is not None else self._middle()
        keep = self.zoom / zoom
        self.zoom, self.center = zoom, (row + (crow - row) * keep, col + (ccol - col) * keep)
        self._emit("camera")

    def pan(self, drow: float, dcol: float) -> None:
        """Move the picture by (drow, dcol) display pixels."""
        crow, ccol = self.center if self.center is not None else self._middle()
        self.center = (crow - drow, ccol - dcol)
        self._emit("camera")

    def reset_camera(self) -> None:
        """Fit the whole plane into the view."""
        self.zoom, self.center = 1.0, None
        self._emit("camera")

    def _middle(self) -> tuple[float, float]:
        rows, cols = self.geometry.plane_shape(self.axis)
        return rows / 2, cols / 2

    def _on_cursor(self, change: Change) -> None:
        fields = set(change.fields - {"point"})
        if "point" in change.fields:
            if self.axis in change.axes:
                fields.add("slice")
            if change.axes - {self.axis}:
                fields.add("crosshair")
        if fields:
            self._emit(*fields)


class ViewerState:
    """The three planes (axial, coronal, sagittal for a canonical scan) over one cursor, and
    which one, if any, is maximised."""

    def __init__(self, geometry: ScanGeometry, n_classes: int = 2,
                 window: tuple[float, float] = WINDOW_PRESETS["abdomen"]):
        self.geometry = geometry
        self.cursor = CursorState(geometry, n_classes, window)
        self.views = tuple(PlaneView(self.cursor, axis) for axis in range(3))

    @classmethod
    def for_volume(cls, volume, n_classes: int = 2) -> ViewerState:
        """A viewer on an io.volume.Volume, windowed to its 0.5-99.5 percentiles (its first
        channel; set a CT preset with cursor.set_preset)."""
        first = volume.array[0] if volume.array.ndim == 4 else volume.array
        return cls(ScanGeometry.from_volume(volume), n_classes, percentile_window(first))

    @property
    def maximised(self) -> PlaneView | None:
        return next((v for v in self.views if v.maximised), None)

    @property
    def shown(self) -> tuple[PlaneView, ...]:
        """The planes laid out: all three, or the maximised one."""
        one = self.maximised
        return (one,) if one is not None else self.views

    def toggle_maximised(self, axis: int) -> None:
        """Double-click: maximise the plane across `axis`, or go back to three planes."""
        target = not self.views[axis].maximised
        for view in self.views:
            view.maximised = target and view.axis == axis
        for view in self.views:
            view._emit("layout")
