"""The edit history of a review session: every stroke (or fill, polygon, accept, reset) on any
item is one Edit, undone and redone in the order it was made, across items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_EDITS = 1000  # the oldest edits are forgotten beyond this (each holds only its changed box)


@dataclass
class Edit:
    key: str                         # the item edited (EditableMask.key)
    plane: int                       # its plane (a scan's slice; 0 for a 2-D image)
    box: tuple[int, int, int, int]   # (y0, y1, x0, x1) changed
    before: np.ndarray
    after: np.ndarray
    what: str                        # "brush", "eraser", "fill", "polygon", "accept", "reset"


class History:
    def __init__(self, limit: int = MAX_EDITS):
        self.limit = limit
        self._done: list[Edit] = []
        self._undone: list[Edit] = []

    def push(self, edit: Edit) -> None:
        self._done.append(edit)
        del self._done[:-self.limit]
        self._undone.clear()

    def undo(self) -> Edit | None:
        """The edit to take back (its `before` goes back in), or None."""
        if not self._done:
            return None
        edit = self._done.pop()
        self._undone.append(edit)
        return edit

    def redo(self) -> Edit | None:
        if not self._undone:
            return None
        edit = self._undone.pop()
        self._done.append(edit)
        return edit

    @property
    def can_undo(self) -> bool:
        return bool(self._done)

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def __len__(self) -> int:
        return len(self._done)
