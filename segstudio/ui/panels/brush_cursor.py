"""The brush cursor: the circle that follows the mouse while painting, one screen pixel wide at
any zoom."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QPen
from PySide6.QtWidgets import QGraphicsEllipseItem


class BrushCursor(QGraphicsEllipseItem):
    """A white circle in `box` at height `z`, hidden until shown, left out of the box's range."""

    def __init__(self, box: pg.ViewBox, z: float):
        super().__init__()
        pen = QPen(Qt.GlobalColor.white)
        pen.setCosmetic(True)
        self.setPen(pen)
        self.setZValue(z)
        self.setVisible(False)
        box.addItem(self, ignoreBounds=True)

    def place(self, col: float, row: float, radius: float | None, scale: tuple[float, float] = (1.0, 1.0)) -> None:
        """Show it around the pixels within `radius` of (col, row), to their outer edges, or hide
        it (`radius` None); `scale`: the scene's units per pixel across and down."""
        self.setVisible(radius is not None)
        if radius is not None:
            r, (sx, sy) = radius + 0.5, scale
            self.setRect(QRectF((col - r) * sx, (row - r) * sy, 2 * r * sx, 2 * r * sy))
