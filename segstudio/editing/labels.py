"""EditableMask: one item's labels being corrected, at the image's original size, with the
ground truth and prediction it can be reset to, and which planes changed since the last save."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import paint
from .history import Edit


@dataclass
class EditableMask:
    key: str                          # the item: image file (and frame), or scan file
    name: str
    image: np.ndarray                 # (Z, H, W) or (Z, H, W, 3) display image, 8-bit
    labels: np.ndarray                # (Z, H, W) uint8 class indices: what is edited
    truth: np.ndarray | None          # the labels as loaded (ground truth or earlier correction)
    pred: np.ndarray | None           # the model's prediction, same shape
    uncertainty: np.ndarray | None = None  # uint8 entropy map, same shape (255: all classes equal)
    mask_file: str = ""               # the user's mask (or the correction) it was loaded from
    source: str = ""                  # the image file (or scan)
    frame: int = 0
    axis: int = 0                     # a scan: the canonical axis its planes are taken across
    started_from: str = "ground truth"  # or "prediction" (an unlabelled image), "empty"
    recovered: bool = False           # unsaved edits from an earlier session were restored
    frames: int = 1                   # frames of the image file (2-D)
    ctx: object = None                # the MaskContext it was loaded with (saved with it too)
    dirty: set[int] = field(default_factory=set)  # planes changed since the last save
    strokes: int = 0
    version: int = 0                  # bumped by every change (a save in progress checks it)
    _before: np.ndarray | None = None  # the plane as it was when the current stroke began
    _box: tuple | None = None
    _last: tuple[float, float] | None = None

    @property
    def is_scan(self) -> bool:
        return self.labels.shape[0] > 1

    @property
    def unsaved(self) -> bool:
        return bool(self.dirty)

    # -- strokes -----------------------------------------------------------------------------
    def begin(self, plane: int) -> None:
        """Start a stroke on `plane` (its state is kept for undo)."""
        self._before = self.labels[plane].copy()
        self._box, self._last = None, None

    def brush_to(self, plane: int, y: float, x: float, radius: int, value: int) -> tuple | None:
        """Paint from the stroke's last point to (y, x); returns the changed box."""
        start = self._last if self._last is not None else (y, x)
        box = paint.line(self.labels[plane], start, (y, x), radius, value)
        self._last = (y, x)
        self._box = paint.union(self._box, box)
        return box

    def apply(self, plane: int, op: str, *args) -> tuple | None:
        """A one-shot operation inside the stroke: a paint function's name ("fill", "paint_region",
        "polygon") and its arguments after the plane."""
        box = getattr(paint, op)(self.labels[plane], *args)
        self._box = paint.union(self._box, box)
        return box

    def end(self, plane: int, what: str) -> Edit | None:
        """Finish the stroke: the Edit for the history, None when nothing changed."""
        before, box = self._before, self._box
        self._before, self._box, self._last = None, None, None
        if before is None or box is None:
            return None
        y0, y1, x0, x1 = box
        old, new = before[y0:y1, x0:x1], self.labels[plane, y0:y1, x0:x1]
        if np.array_equal(old, new):
            return None
        self.dirty.add(plane)
        self.strokes += 1
        self.version += 1
        return Edit(self.key, plane, box, old.copy(), new.copy(), what)

    def replace(self, plane: int, labels: np.ndarray, what: str) -> Edit | None:
        """Replace a whole plane (accept the prediction, reset to the ground truth)."""
        self.begin(plane)
        self.labels[plane] = labels
        self._box = (0, labels.shape[0], 0, labels.shape[1])
        return self.end(plane, what)

    def put(self, edit: Edit, after: bool) -> None:
        """Undo (after=False) or redo an edit of this mask."""
        y0, y1, x0, x1 = edit.box
        self.labels[edit.plane, y0:y1, x0:x1] = edit.after if after else edit.before
        self.dirty.add(edit.plane)
        self.version += 1

    def saved(self) -> None:
        self.dirty.clear()
