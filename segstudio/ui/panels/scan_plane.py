"""One plane of the three-plane scan viewer: the scan's slice in its window, the overlay, the
crosshair, the orientation letters and the slice index, drawn to scale (pyqtgraph scene units
are millimetres). It draws what its PlaneView (editing/viewer_state.py) tells it changed and
hands mouse events to the viewer; the camera (zoom, pan) lives in the PlaneView."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QWidget

from segstudio.editing.viewer_state import KEY_STEPS, PlaneView
from segstudio.palette import class_colours, compare_colours, compare_map
from segstudio.ui import overlay
from segstudio.ui.panels import plots  # noqa: F401  (pyqtgraph config: row-major images)
from segstudio.ui.panels.brush_cursor import BrushCursor

CROSSHAIR = "#4fd1c5"
LETTER_STYLE = "color: #f6e05e; font-weight: bold; background: transparent;"
INFO_STYLE = "color: #e2e8f0; background: rgba(26, 32, 44, 160); padding: 1px 4px;"
KEYS = {Qt.Key.Key_Right: "Right", Qt.Key.Key_Left: "Left", Qt.Key.Key_PageUp: "PageUp",
        Qt.Key.Key_PageDown: "PageDown"}
ZOOM_STEP = 1.25  # per wheel notch with Ctrl


@lru_cache(maxsize=8)
def _class_lut(visible: tuple[bool, ...]) -> np.ndarray:
    """(256,) uint32: a class's RGBA as one word, transparent for background and hidden classes."""
    rgba = np.concatenate([class_colours(256), np.full((256, 1), 255, np.uint8)], axis=1)
    rgba[~_shown(visible), 3] = 0
    return rgba.view(np.uint32)[:, 0]


@lru_cache(maxsize=8)
def _compare_lut(visible: tuple[bool, ...]) -> np.ndarray:
    """(65536,) uint32: the compare colour of (truth << 8 | pred), transparent where both are
    background or neither class is shown."""
    truth, pred = np.divmod(np.arange(65536), 256)
    rgba = np.concatenate([compare_colours(), np.full((len(compare_colours()), 1), 255, np.uint8)], axis=1)
    m = compare_map(truth, pred)
    out = rgba[m]
    shown = _shown(visible)
    out[(m == 0) | ~(shown[truth] | shown[pred]), 3] = 0
    return np.ascontiguousarray(out).view(np.uint32)[:, 0]


def _shown(visible) -> np.ndarray:
    shown = np.zeros(256, bool)
    shown[:len(visible)] = visible
    shown[0] = False
    return shown


@lru_cache(maxsize=4)
def _grey_lut(lo: float, hi: float) -> np.ndarray:
    """(65536,) uint8: the grey of each int16 value (indexed as uint16) through [lo, hi]."""
    return grey(np.arange(65536, dtype=np.uint16).view(np.int16), lo, hi)


def grey(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values in the scan's units -> 8-bit grey through the window [lo, hi] (int16 scans, as CT
    is stored, through a lookup table)."""
    if values.dtype == np.int16 and values.size > 65536:
        return np.take(_grey_lut(float(lo), float(hi)), values.view(np.uint16))
    scale = np.float32(255.0 / max(hi - lo, 1e-6))
    out = (np.asarray(values, np.float32) - np.float32(lo)) * scale
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def overlay_rgba(mode: str, truth: np.ndarray | None, pred: np.ndarray | None, visible, filled: bool,
                 uncertainty: np.ndarray | None = None) -> np.ndarray | None:
    """The RGBA overlay of one plane: the prediction, the ground truth (as corrected), their
    comparison (palette.compare_map: correct, false positive, missed, wrong class) or the
    uncertainty; classes hidden in `visible` are left out (compare: where neither is visible).
    Colours come from lookup tables of whole RGBA words: a 512 x 512 plane takes about 2 ms."""
    if mode == "uncertainty":
        return None if uncertainty is None else overlay.heat(uncertainty)
    visible = tuple(bool(v) for v in visible)
    if mode == "compare" and truth is not None and pred is not None:
        pair = np.left_shift(truth, 8, dtype=np.uint16)
        pair |= pred
        words = np.take(_compare_lut(visible), pair)
        edges = None if filled else overlay.contour(truth) | overlay.contour(pred)
    else:
        m = pred if mode == "prediction" else truth
        if m is None:
            return None
        words = np.take(_class_lut(visible), m)
        edges = None if filled else overlay.contour(m)
    rgba = words.view(np.uint8).reshape(*words.shape, 4)
    if edges is not None:
        rgba[..., 3][~edges] = 0
    return rgba


class OverlayItem(pg.ImageItem):
    """An RGBA ImageItem kept as premultiplied ARGB: converted once per new picture, not at
    every paint (a crosshair move repaints all three planes)."""

    def render(self, *args, **kwargs):
        super().render(*args, **kwargs)
        if self.qimage is not None:
            self.qimage = self.qimage.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


class ScanPlane(QWidget):
    """One PlaneView on screen; `viewer` (ScanViewer) supplies the arrays and takes the clicks."""

    def __init__(self, viewer, view: PlaneView, parent=None):
        super().__init__(parent)
        self.viewer, self.view = viewer, view
        self.setObjectName(f"scan_plane_{view.name}")
        g = view.geometry
        self.mm = g.pixel_mm(view.axis)  # a display pixel's (height, width) in mm
        self.graphics = pg.GraphicsView(self)
        self.graphics.setBackground("#000000")
        self.graphics.setAntialiasing(False)  # voxels drawn sharp, and faster
        self.box = pg.ViewBox(enableMenu=False, invertY=True, enableMouse=False)
        self.box.setMouseEnabled(False, False)
        self.box.disableAutoRange()
        self.graphics.setCentralItem(self.box)
        rows, cols = g.plane_shape(view.axis)
        rect = QRectF(0, 0, cols * self.mm[1], rows * self.mm[0])
        self.image_item, self.overlay_item = pg.ImageItem(), OverlayItem()
        for z, item in enumerate((self.image_item, self.overlay_item)):
            item.setZValue(z)
            self.box.addItem(item)
        self._rect = rect
        pen = pg.mkPen(CROSSHAIR, width=1)
        self.vline, self.hline = pg.InfiniteLine(angle=90, pen=pen), pg.InfiniteLine(angle=0, pen=pen)
        for line in (self.vline, self.hline):
            line.setZValue(3)
            self.box.addItem(line, ignoreBounds=True)
        self.brush = BrushCursor(self.box, 4)
        self.letters = {side: QLabel(getattr(view.letters, side), self.graphics) for side in
                        ("top", "bottom", "left", "right")}
        for label in self.letters.values():
            label.setStyleSheet(LETTER_STYLE)
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.label_index = QLabel("", self.graphics, objectName=f"label_index_{view.name}")
        self.label_index.setStyleSheet(INFO_STYLE)
        self.label_index.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.graphics.viewport().installEventFilter(self)
        self.graphics.installEventFilter(self)  # keys: step this plane (not scroll the view)
        self.graphics.viewport().setMouseTracking(True)
        self._drag: str | None = None  # "cursor", "paint" or "pan" while a button is down
        self._last = (0.0, 0.0)
        self._size = (0, 0)
        self.box.sigResized.connect(self.apply_camera)
        view.connect(self._on_view)
        self.redraw_image()
        self.redraw_overlay()
        self.move_crosshair()

    def resizeEvent(self, event) -> None:
        self.graphics.setGeometry(self.rect())
        w, h = self.width(), self.height()
        for side, label in self.letters.items():
            label.adjustSize()
            x = {"left": 4, "right": w - label.width() - 4}.get(side, (w - label.width()) // 2)
            y = {"top": 2, "bottom": h - label.height() - 2}.get(side, (h - label.height()) // 2)
            label.move(x, y)
        self.label_index.move(4, 2)
        super().resizeEvent(event)

    # -- drawing ------------------------------------------------------------------------------
    def _on_view(self, change) -> None:
        f = change.fields
        if "slice" in f:
            self.redraw_image()
            self.redraw_overlay()
        elif "window" in f:
            self.redraw_image()
        elif "overlay" in f:
            self.redraw_overlay()
        if "crosshair" in f or "slice" in f:
            self.move_crosshair()
        if "camera" in f:
            self.apply_camera()

    def redraw_image(self) -> None:
        lo, hi = self.view.cursor.window_range
        self.image_item.setImage(grey(self.view.image(self.viewer.values), lo, hi), autoLevels=False,
                                 levels=(0, 255))
        self.image_item.setRect(self._rect)
        v = self.view
        n = v.geometry.shape[v.axis]
        self.label_index.setText(f"{v.name.capitalize()} {v.index + 1}/{n}")
        self.label_index.adjustSize()

    def redraw_overlay(self, box=None) -> None:
        """The overlay of this plane; `box` (display rows/cols r0, r1, c0, c1): only that part."""
        c, v = self.view.cursor, self.view
        arrays = self.viewer.overlay_arrays()
        planes = [None if a is None else v.image(a) for a in arrays]
        if box is not None and self.overlay_item.image is not None:
            r0, r1, c0, c1 = box
            part = [None if p is None else p[r0:r1, c0:c1] for p in planes]
            rgba = overlay_rgba(c.overlay, *part[:2], c.visible, c.filled, part[2])
            if rgba is not None:
                self.overlay_item.image[r0:r1, c0:c1] = rgba
                self.overlay_item.updateImage()
                return
        rgba = overlay_rgba(c.overlay, *planes[:2], c.visible, c.filled, planes[2])
        if rgba is None:
            self.overlay_item.clear()
            return
        self.overlay_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.overlay_item.setRect(self._rect)
        self.overlay_item.setOpacity(c.opacity)

    def move_crosshair(self) -> None:
        row, col = self.view.crosshair()
        self.vline.setValue(col * self.mm[1])
        self.hline.setValue(row * self.mm[0])

    def apply_camera(self, *_args) -> None:
        """Show what the PlaneView's camera says (zoom about the fitted view, its centre)."""
        w, h = self.box.width(), self.box.height()
        if w <= 0 or h <= 0:
            return
        sx, sy, ox, oy = self.view.screen_transform(w, h)
        rmm, cmm = self.mm
        self.box.setRange(xRange=(-ox / sx * cmm, (w - ox) / sx * cmm),
                          yRange=(-oy / sy * rmm, (h - oy) / sy * rmm), padding=0)

    # -- mouse --------------------------------------------------------------------------------
    def display_at(self, pos) -> tuple[float, float]:
        """The display (row, col) under a viewport position."""
        p = self.box.mapSceneToView(self.graphics.mapToScene(pos.toPoint()))
        return p.y() / self.mm[0], p.x() / self.mm[1]

    def show_brush(self, row: float, col: float, radius: float | None) -> None:
        self.brush.place(col, row, radius, (self.mm[1], self.mm[0]))

    def eventFilter(self, obj, event) -> bool:
        kind = event.type()
        if kind == QEvent.Type.KeyPress and obj is self.graphics:
            step = KEY_STEPS.get(KEYS.get(event.key(), ""))
            if step is None or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
                return False
            self.view.step(step)
            return True
        if obj is self.graphics:
            return False
        if kind == QEvent.Type.Enter:
            self.viewer.hovered = self
            return False
        if kind == QEvent.Type.Leave:
            self.brush.setVisible(False)
            return False
        if kind == QEvent.Type.Wheel:
            row, col = self.display_at(event.position())
            notches = event.angleDelta().y() / 120
            if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                self.view.zoom_at(ZOOM_STEP ** notches, row, col)
            elif notches:
                self.view.step(-1 if notches > 0 else 1)
            self.viewer.hovered = self
            return True
        if kind == QEvent.Type.MouseButtonDblClick:
            self.viewer.state.toggle_maximised(self.view.axis)
            return True
        if kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            return False
        row, col = self.display_at(event.position())
        if kind == QEvent.Type.MouseButtonPress:
            self.viewer.hovered = self
            if event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton):
                self._drag = "pan"
            elif event.button() == Qt.MouseButton.LeftButton:
                self._drag = "paint" if self.viewer.paint_press(self, row, col) else "cursor"
                if self._drag == "cursor":
                    self.view.click(row, col)
            self._last = (row, col)
            return True
        if kind == QEvent.Type.MouseMove:
            self.viewer.hover(self, row, col)
            if self._drag == "cursor":
                self.view.click(row, col)
            elif self._drag == "paint":
                self.viewer.paint_drag(self, row, col)
            elif self._drag == "pan":
                self.view.pan(row - self._last[0], col - self._last[1])
                row, col = self.display_at(event.position())  # the picture moved under the mouse
            self._last = (row, col)
            return self._drag is not None
        drag, self._drag = self._drag, None
        if drag == "paint":
            self.viewer.paint_release(self)
        return drag is not None
