"""ReviewModel: the review's state without Qt, as napari's labels layer keeps painting in its core
model. The items (images or scans), the one on screen and its slice, the display options, the
paint tool, the masks being corrected at their original size, and one undo/redo history over
the session. The Qt viewer draws it and forwards mouse and key events to it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import SegstudioError
from ..inference.review import ReviewItem
from . import paint
from .history import Edit, History
from .labels import EditableMask
from .store import MaskContext, SaveJob, autosave, corrections_folder, finish_job, item_key, snapshot, write_job

TOOLS = ("brush", "eraser", "fill", "polygon")
MAX_RADIUS = 100
MAX_TOLERANCE = 255
FILL_CONFIRM_SHARE = 0.25  # a fill larger than this share of the image is done on a second click


@dataclass
class DisplayOptions:
    show_pred: bool = True
    show_truth: bool = False
    compare: bool = False
    outline: bool = False
    uncertainty: bool = False   # the entropy map instead of the masks
    opacity: float = 0.5


@dataclass
class ToolState:
    tool: str = "brush"
    radius: int = 6
    label: int = 1              # the class painted
    tolerance: int = 0          # fill: only pixels within this of the clicked image value (0: any)


Listener = Callable[[str, object], None]  # (what changed, detail)


class ReviewModel:
    """Emits "items", "current", "slice", "labels" (the changed (y0, y1, x0, x1) box),
    "tool", "history", "saved" and "warning" (a message) to its listeners."""

    def __init__(self):
        self.items: list[ReviewItem] = []
        self.current = -1
        self.slice = 0
        self.options = DisplayOptions()
        self.tool = ToolState()
        self.masks: dict[str, EditableMask] = {}  # loaded for editing, by item key
        self.history = History()
        self.ctx: MaskContext | None = None
        self._listeners: list[Listener] = []
        self._polygon: list[tuple[float, float]] = []
        self._pending_fill: tuple | None = None  # (what it would fill, region) awaiting a second click

    def listen(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def _emit(self, what: str, detail=None) -> None:
        for fn in list(self._listeners):
            fn(what, detail)

    # -- items -------------------------------------------------------------------------------
    def set_items(self, items: list[ReviewItem], ctx: MaskContext | None) -> None:
        """New items (a new run's review, a prediction); masks with unsaved edits are kept."""
        self.items, self.ctx, self.current = list(items), ctx, -1
        self.masks = {k: m for k, m in self.masks.items() if m.unsaved}
        self._emit("items")

    def select(self, index: int) -> None:
        if index != self.current and 0 <= index < len(self.items):
            self.current = index
            self.slice = 0
            self._emit("current", index)

    @property
    def item(self) -> ReviewItem | None:
        return self.items[self.current] if 0 <= self.current < len(self.items) else None

    @property
    def mask(self) -> EditableMask | None:
        """The current item's mask when it is loaded for editing."""
        item = self.item
        return None if item is None else self.masks.get(item_key(item))

    def add_mask(self, mask: EditableMask) -> None:
        """A mask loaded (in a worker) for an item; kept when one with edits is already here."""
        if mask.key in self.masks and self.masks[mask.key].unsaved:
            return
        if mask.ctx is None:
            mask.ctx = self.ctx
        self.masks[mask.key] = mask
        self._emit("labels", None)

    def set_slice(self, k: int) -> None:
        mask, item = self.mask, self.item
        n = len(mask.labels) if mask is not None else (len(item.pred) if item is not None and item.is_scan else 1)
        self.slice = int(min(max(k, 0), n - 1))
        self._emit("slice", self.slice)

    # -- tools -------------------------------------------------------------------------------
    def set_tool(self, tool: str | None = None, radius: int | None = None, label: int | None = None,
                 tolerance: int | None = None) -> None:
        if tool is not None:
            if tool not in TOOLS:
                raise ValueError(f"unknown tool {tool!r}")
            self.tool.tool = tool
        if radius is not None:
            self.tool.radius = int(min(max(radius, 0), MAX_RADIUS))
        if label is not None and self.ctx is not None and 0 <= label < len(self.ctx.codes):
            self.tool.label = int(label)
        if tolerance is not None:
            self.tool.tolerance = int(min(max(tolerance, 0), MAX_TOLERANCE))
        self._emit("tool", self.tool)

    def _value(self) -> int:
        return 0 if self.tool.tool == "eraser" else self.tool.label

    def press(self, y: float, x: float) -> tuple | None:
        """A mouse press at image pixel (y, x): starts a brush/eraser stroke or a polygon, or fills."""
        mask = self.mask
        if mask is None:
            return None
        plane = self.slice
        if self.tool.tool == "fill":
            return self._fill(mask, plane, int(y), int(x))
        mask.begin(plane)
        if self.tool.tool == "polygon":
            self._polygon = [(y, x)]
            return None
        box = mask.brush_to(plane, y, x, self.tool.radius, self._value())
        self._emit("labels", box)
        return box

    def _fill(self, mask: EditableMask, plane: int, y: int, x: int) -> tuple | None:
        """Fill the region under (y, x), within the tolerance of its image value when one is set.
        A fill of more than FILL_CONFIRM_SHARE of the image (typically the background, borders
        included) is only said at first; a second click in that region does it."""
        labels, value, tol = mask.labels[plane], self._value(), self.tool.tolerance
        h, w = labels.shape
        if not (0 <= y < h and 0 <= x < w) or labels[y, x] == value:
            return None
        region = paint.fill_region(labels, y, x, mask.image[plane] if tol else None, tol)
        what = (mask.key, plane, mask.version, value, tol)
        pending, self._pending_fill = self._pending_fill, None
        share = float(region.mean())
        confirmed = pending is not None and pending[0] == what and pending[1][y, x]
        if share > FILL_CONFIRM_SHARE and not confirmed:
            self._pending_fill = (what, region)
            edges = ", up to the image's edges" if paint.touches_border(region) else ""
            self._emit("warning", f"This fill would cover {share:.0%} of the image{edges}: click the same "
                                  "region again to fill it, or set a fill tolerance (±) to keep it to "
                                  "similar grey values.")
            return None
        mask.begin(plane)
        box = mask.apply(plane, "paint_region", region, value)
        self._finish(mask, plane)
        return box

    def drag(self, y: float, x: float) -> tuple | None:
        mask = self.mask
        if mask is None:
            return None
        if self.tool.tool == "polygon":
            if self._polygon:
                self._polygon.append((y, x))
            return None
        if self.tool.tool == "fill":
            return None
        box = mask.brush_to(self.slice, y, x, self.tool.radius, self._value())
        if box is not None:
            self._emit("labels", box)
        return box

    def release(self) -> Edit | None:
        mask = self.mask
        if mask is None:
            return None
        if self.tool.tool == "polygon":
            points, self._polygon = self._polygon, []
            mask.apply(self.slice, "polygon", points, self.tool.label)
        return self._finish(mask, self.slice)

    @property
    def polygon_points(self) -> list[tuple[float, float]]:
        return list(self._polygon)

    def _finish(self, mask: EditableMask, plane: int, what: str | None = None) -> Edit | None:
        edit = mask.end(plane, what or self.tool.tool)
        if edit is not None:
            self.history.push(edit)
            self._autosave(mask, plane)
            self._emit("labels", edit.box)
            self._emit("history")
        return edit

    def _autosave(self, mask: EditableMask, plane: int) -> None:
        if mask.ctx is None:  # a scan viewer used on its own: nowhere to keep edits
            return
        try:
            autosave(mask, plane)
        except OSError as e:  # the edit stays in memory; saving will say more
            self._emit("warning", f"Could not keep unsaved edits on disk: {e.strerror or e}")

    # -- whole-plane edits, undo/redo --------------------------------------------------------
    def accept_prediction(self) -> Edit | None:
        """The prediction becomes the current slice's labels (one undoable edit)."""
        mask = self.mask
        if mask is None or mask.pred is None:
            return None
        return self._replace(mask, mask.pred[self.slice], "accept")

    def reset_to_truth(self) -> Edit | None:
        """Back to the labels as loaded (the ground truth, or an earlier correction)."""
        mask = self.mask
        if mask is None or mask.truth is None:
            return None
        return self._replace(mask, mask.truth[self.slice], "reset")

    def _replace(self, mask: EditableMask, labels: np.ndarray, what: str) -> Edit | None:
        edit = mask.replace(self.slice, labels, what)
        if edit is not None:
            self.history.push(edit)
            self._autosave(mask, self.slice)
            self._emit("labels", edit.box)
            self._emit("history")
        return edit

    def record(self, mask: EditableMask, edit: Edit) -> None:
        """An edit made by the scan viewer's tools (editing/scan_edit.py): into the one history,
        its axial planes autosaved."""
        self.history.push(edit)
        for plane in range(edit.box[0], edit.box[1]) if len(edit.box) == 6 else (edit.plane,):
            self._autosave(mask, plane)
        self._emit("labels", edit.box)
        self._emit("history")

    def undo(self) -> Edit | None:
        return self._step(self.history.undo(), after=False)

    def redo(self) -> Edit | None:
        return self._step(self.history.redo(), after=True)

    def _step(self, edit: Edit | None, after: bool) -> Edit | None:
        """Put an undone/redone edit in place, going to its item and slice first."""
        if edit is None:
            return None
        mask = self.masks.get(edit.key)
        index = next((i for i, it in enumerate(self.items) if item_key(it) == edit.key), -1)
        if mask is None or index < 0:  # its image is no longer listed: not changed out of sight
            self._emit("warning", f"{'Undo' if not after else 'Redo'} skipped an edit of an image that is "
                                  "no longer in the list (show those images again to undo it).")
            return None
        mask.put(edit, after)
        if index != self.current:
            self.select(index)
        if edit.plane != self.slice:
            self.set_slice(edit.plane)
        for plane in range(edit.box[0], edit.box[1]) if len(edit.box) == 6 else (edit.plane,):
            self._autosave(mask, plane)
        self._emit("labels", edit.box)
        self._emit("history")
        return edit

    # -- saving ------------------------------------------------------------------------------
    def unsaved(self) -> list[EditableMask]:
        return [m for m in self.masks.values() if m.unsaved]

    def prepare_save(self) -> list[SaveJob]:
        """Snapshots of every mask with edits (on the GUI thread; painting may go on after)."""
        return [snapshot(m) for m in self.unsaved()]

    @staticmethod
    def write(jobs: list[SaveJob]) -> list[tuple[SaveJob, Path | None, str]]:
        """Write snapshots (in a worker: touches no state): (job, file or None, problem)."""
        results = []
        for job in jobs:
            try:
                results.append((job, write_job(job), ""))
            except (SegstudioError, OSError, ValueError) as e:
                results.append((job, None, f"{job.mask.name}: {getattr(e, 'strerror', None) or e}"))
        return results

    def finish_save(self, results) -> tuple[list[Path], list[str]]:
        """Mark what was written as saved (on the GUI thread): (files, problems)."""
        written = []
        for job, path, _ in results:
            if path is not None:
                finish_job(job)
                written.append(path)
        problems = [p for _, path, p in results if path is None]
        self._emit("saved", [job.mask.key for job, path, _ in results if path is not None])
        return written, problems

    def save(self) -> tuple[list[Path], list[str]]:
        """Save every mask with edits now: (files written, problems as "name: reason")."""
        return self.finish_save(self.write(self.prepare_save()))

    def discard(self) -> None:
        """Forget unsaved edits (and their autosaves)."""
        for mask in self.unsaved():
            corrections_folder(mask).discard_autosave(mask.key)
        self.masks = {k: m for k, m in self.masks.items() if not m.unsaved}
        self.history = History()
        self._emit("history")
