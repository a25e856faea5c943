"""The review's image view: an item's image with its prediction and ground truth over it, window
and level (in HU for CT, review_levels.py), and what is under the cursor. Display only: decoding
happens in workers, and the panel hands over what they return."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, Qt, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton,
                               QSizePolicy, QSlider, QVBoxLayout, QWidget)
from superqt import QLabeledSlider, QRangeSlider
from superqt.utils import signals_blocked

from segstudio.preprocess.windowing import WINDOW_PRESETS
from segstudio.editing.review_model import ReviewModel
from segstudio.palette import COMPARE
from segstudio.ui import overlay
from segstudio.ui.panels import plots  # noqa: F401  (pyqtgraph config: row-major images)
from segstudio.ui.panels.brush_cursor import BrushCursor
from segstudio.ui.panels.review_levels import CUSTOM, PRESET_HINT, LevelsMixin

LEGEND_CLASSES = 8  # more classes than this: the legend names the first ones, the tooltip all
EDITING_FRAME = "QGraphicsView { border: 3px solid #dd6b20; }"  # the view while correcting (as the toggle)


class ReviewViewer(LevelsMixin, QWidget):
    """Shows one ReviewItem (a 3-D scan one slice at a time: slider, wheel, arrow keys, a jump to
    the slices with the largest errors); `set_frame` swaps in an image in modality units once
    decoded. Once the model holds the item's mask at its original size, that is shown, and in
    editing mode the left button paints into it through the model."""

    def __init__(self, model: ReviewModel | None = None, parent=None):
        super().__init__(parent)
        self.model = model or ReviewModel()
        self.editing = False
        self._painting = False
        self._rgba = None  # the overlay on screen (updated in place while painting)
        self.item = None
        self._item_shown = None
        self.slice = 0  # the scan's slice on screen
        self._worst = []  # the scan's slices by error, largest first, and where the jump is
        self.frame = None  # the item's ModalityFrame, when it has one
        self.codes: tuple[str, ...] = ()
        self._level_unit: str | None = None  # None: 8-bit display values; else DICOM units ("HU", "")
        self._levels_by_unit: dict = {}  # the window last shown in each unit, kept across items
        self._shown_shape = None
        self.view_review = pg.GraphicsLayoutWidget()
        self.view_review.setObjectName("view_review")
        self.viewbox = self.view_review.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view_review.setBackground("#1a202c")
        self.image_item = pg.ImageItem()
        self.mask_item = pg.ImageItem()
        self.mask_item.setZValue(1)
        self.viewbox.addItem(self.image_item)
        self.viewbox.addItem(self.mask_item)
        self.brush_cursor = BrushCursor(self.viewbox, 3)
        self.lasso = pg.PlotCurveItem(pen=pg.mkPen("w", width=1))
        self.lasso.setZValue(3)
        self.viewbox.addItem(self.lasso, ignoreBounds=True)
        self.placeholder = pg.TextItem("Predictions appear here after a run finishes\n"
                                       "(or File ▸ Open run…)", color="#a0aec0", anchor=(0.5, 0.5))
        self.viewbox.addItem(self.placeholder)
        self.placeholder.setPos(0, 0)
        self.viewbox.setRange(xRange=(-1, 1), yRange=(-1, 1))
        self.view_review.scene().sigMouseMoved.connect(self._on_mouse)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addLayout(self._build_controls())
        v.addWidget(self.view_review, 1)
        v.addLayout(self._build_slices())
        self.view_review.viewport().installEventFilter(self)
        info = QHBoxLayout()
        self.label_info = QLabel("", objectName="label_review_info")
        self.label_readout = QLabel("", objectName="label_readout")
        self.label_readout.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        for label in (self.label_info, self.label_readout):
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        info.addWidget(self.label_info, 3)
        info.addWidget(self.label_readout, 2)
        v.addLayout(info)

    def _build_controls(self) -> QVBoxLayout:
        self.bool_show_pred = QCheckBox("Prediction", objectName="bool_show_pred", checked=True)
        self.bool_show_truth = QCheckBox("Ground truth", objectName="bool_show_truth")
        self.bool_compare = QCheckBox("Compare", objectName="bool_compare")
        self.bool_compare.setToolTip("The prediction against the ground truth:\n"
                                     "green: correct, red: false positive (predicted on background),\n"
                                     "blue: missed (predicted as background), yellow: wrong class\n"
                                     "(another foreground class predicted, e.g. kidney as liver)")
        self.bool_uncertainty = QCheckBox("Uncertainty", objectName="bool_uncertainty")
        self.bool_uncertainty.setToolTip("Where the model is unsure: the entropy of its class probabilities\n"
                                         "(dark: certain, bright yellow: all classes equally likely)")
        self.combo_style = QComboBox(objectName="combo_overlay_style")
        self.combo_style.addItems(["Filled", "Contour"])
        self.slider_opacity = QLabeledSlider(Qt.Orientation.Horizontal)
        self.slider_opacity.setObjectName("slider_opacity")
        self.slider_opacity.setRange(0, 100)
        self.slider_opacity.setValue(50)
        self.slider_opacity.setFixedWidth(150)
        self.slider_levels = QRangeSlider(Qt.Orientation.Horizontal)
        self.slider_levels.setObjectName("slider_levels")
        self.slider_levels.setRange(0, 255)
        self.slider_levels.setValue((0, 255))
        self.slider_levels.setToolTip("Window/level of the displayed image (darkest…brightest grey);\n"
                                      "DICOM images are shown in their own units (HU for CT)")
        self.slider_levels.setFixedWidth(130)
        self.label_levels = QLabel("0–255", objectName="label_levels")
        self.label_levels.setMinimumWidth(120)
        self.slider_levels.valueChanged.connect(self._show_levels)
        for w in (self.bool_show_pred, self.bool_show_truth, self.bool_compare, self.bool_uncertainty):
            w.toggled.connect(self._options_changed)
        self.combo_style.currentIndexChanged.connect(self._options_changed)
        self.slider_opacity.valueChanged.connect(self._options_changed)
        top = QHBoxLayout()
        for w in (self.bool_show_pred, self.bool_show_truth, self.bool_compare, self.bool_uncertainty):
            top.addWidget(w)
        self.label_legend = QLabel("", objectName="label_legend")
        self.label_legend.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label_legend.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        top.addWidget(self.label_legend, 1)  # the row to itself: the compare legend has four names
        bottom = QHBoxLayout()
        self.combo_preset = QComboBox(objectName="combo_window_preset", enabled=False)
        self.combo_preset.addItem(PRESET_HINT)
        self.combo_preset.addItems(list(WINDOW_PRESETS))
        self.combo_preset.addItem(CUSTOM)
        self.combo_preset.setToolTip("CT window presets (width/level in HU)")
        self.combo_preset.activated.connect(self._apply_preset)
        for w in (self.combo_style, QLabel("  Opacity"), self.slider_opacity, QLabel("   Window"), self.slider_levels,
                  self.label_levels, self.combo_preset):
            bottom.addWidget(w)
        bottom.addStretch(1)
        h = QVBoxLayout()
        h.addLayout(top)
        h.addLayout(bottom)
        self.mask_item.setOpacity(0.5)
        return h

    def _build_slices(self) -> QHBoxLayout:
        self.slider_slice = QSlider(Qt.Orientation.Horizontal, objectName="slider_slice")
        self.slider_slice.valueChanged.connect(self.show_slice)
        self.label_slice = QLabel("", objectName="label_slice")
        self.button_worst_slice = QPushButton("Largest error ▸", objectName="button_worst_slice")
        self.button_worst_slice.setToolTip("Jump to the slice with the next largest error "
                                           "(false positives and misses)")
        self.button_worst_slice.clicked.connect(self.next_worst_slice)
        h = QHBoxLayout()
        for w in (QLabel("Slice"), self.slider_slice, self.label_slice, self.button_worst_slice):
            h.addWidget(w)
        h.setStretch(1, 1)
        self._slice_widgets = [h.itemAt(i).widget() for i in range(h.count())]
        self._show_slice_controls(False)
        return h

    def _show_slice_controls(self, visible: bool) -> None:
        for w in self._slice_widgets:
            w.setVisible(visible)

    # -- items -------------------------------------------------------------------------------
    def set_codes(self, codes: tuple[str, ...]) -> None:
        self.codes = tuple(codes)
        self._update_legend()
        has_truth = self.item is None or self.item.target is not None
        self.bool_show_truth.setEnabled(has_truth)
        self.bool_compare.setEnabled(has_truth)

    def show_item(self, item, frame=None) -> None:
        """Show `item`, in modality units when its decoded `frame` is already known; a scan
        opens at the slice with the most foreground."""
        first = self.item is None
        if item is not self.item:  # what was under the cursor belonged to the previous item
            self.label_readout.clear()
        self._item_shown = self.item
        self.item, self.frame = item, frame
        self.placeholder.setVisible(False)
        for w in (self.bool_show_truth, self.bool_compare):
            w.setEnabled(item.target is not None)
        self._show_slice_controls(item.is_scan)
        if item.is_scan:
            fg = (item.pred > 0).reshape(len(item.pred), -1).sum(axis=1)
            if item.target is not None:
                fg = fg + (item.target > 0).reshape(len(item.target), -1).sum(axis=1)
            errors = item.slice_errors if item.slice_errors is not None else np.zeros(len(item.pred))
            self._worst = [int(k) for k in np.argsort(-np.asarray(errors), kind="stable") if errors[k] > 0]
            if item is not self._item_shown:  # a new scan opens at its most foreground (a reload keeps the slice)
                self.slice = int(np.argmax(fg))
            self.model.slice = self.slice
            with signals_blocked(self.slider_slice):
                self.slider_slice.setRange(0, len(item.pred) - 1)
                self.slider_slice.setValue(self.slice)
            self.button_worst_slice.setEnabled(bool(self._worst))
        self._show_image()
        if first:
            self.fit()

    @Slot(int)
    def show_slice(self, k: int) -> None:
        """Show slice `k` of the scan on screen."""
        if self.item is None or not self.item.is_scan:
            return
        self.slice = int(min(max(k, 0), len(self.item.pred) - 1))
        self.model.slice = self.slice  # strokes go to the slice on screen
        if self.slider_slice.value() != self.slice:
            self.slider_slice.setValue(self.slice)  # comes back here once
            return
        self._show_image()

    def step_slice(self, delta: int) -> None:
        self.show_slice(self.slice + delta)

    @Slot()
    def next_worst_slice(self) -> None:
        """The slice with the next largest error (after the current one in that order)."""
        if not self._worst:
            return
        after = self._worst.index(self.slice) + 1 if self.slice in self._worst else 0
        self.show_slice(self._worst[after % len(self._worst)])

    @property
    def mask(self):
        """The item's mask at its original size, once loaded (editing.labels.EditableMask)."""
        mask = self.model.mask
        return mask if mask is not None and self.item is self.model.item else None

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(image, prediction, truth) on screen: the item's, or its current slice's; at the
        original size (the truth being the labels as corrected) once the mask is loaded."""
        it, k, mask = self.item, self.slice, self.mask
        if mask is not None:
            k = min(k, len(mask.labels) - 1)
            pred = mask.pred[k] if mask.pred is not None else np.zeros_like(mask.labels[k])
            return mask.image[k], pred, mask.labels[k]
        if not it.is_scan:
            return it.image, it.pred, it.target
        return it.image[k], it.pred[k], None if it.target is None else it.target[k]

    def uncertainty_plane(self) -> np.ndarray | None:
        mask, it = self.mask, self.item
        if mask is not None and mask.uncertainty is not None:
            return mask.uncertainty[min(self.slice, len(mask.uncertainty) - 1)]
        if it is not None and it.uncertainty_map is not None:
            return it.uncertainty_map if not it.is_scan else it.uncertainty_map[self.slice]
        return None

    def _options_changed(self, *_args) -> None:
        o = self.model.options
        o.show_pred, o.show_truth = self.bool_show_pred.isChecked(), self.bool_show_truth.isChecked()
        o.compare, o.uncertainty = self.bool_compare.isChecked(), self.bool_uncertainty.isChecked()
        o.outline, o.opacity = self.combo_style.currentIndex() == 1, self.slider_opacity.value() / 100.0
        self.mask_item.setOpacity(o.opacity)
        self.redraw()

    def set_editing(self, on: bool) -> None:
        self.editing = bool(on)
        self.view_review.setStyleSheet(EDITING_FRAME if on else "")
        self.brush_cursor.setVisible(False)
        self.redraw()

    def eventFilter(self, obj, event) -> bool:  # painting; the wheel steps through a scan's slices
        kind = event.type()
        if kind in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            return self._paint_event(kind, event)
        if (event.type() == QEvent.Type.Wheel and self.item is not None and self.item.is_scan
                and not event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            self.step_slice(1 if event.angleDelta().y() < 0 else -1)
            return True  # Ctrl+wheel zooms, as pyqtgraph does with the plain wheel
        return super().eventFilter(obj, event)

    def _paint_event(self, kind, event) -> bool:
        """Left-button strokes go to the model while editing (the view pans with the middle
        button and zooms with Ctrl+wheel or the right button)."""
        if not self.editing or self.mask is None:
            return False
        p = self.viewbox.mapSceneToView(self.view_review.mapToScene(event.position().toPoint()))
        y, x = p.y() - 0.5, p.x() - 0.5  # pixel k spans [k, k + 1): its centre rounds to k
        self._show_cursor(p.x(), p.y())
        left = Qt.MouseButton.LeftButton
        if kind == QEvent.Type.MouseButtonPress and event.button() == left:
            self._painting = True
            self.model.press(y, x)
        elif kind == QEvent.Type.MouseMove and self._painting:
            self.model.drag(y, x)
        elif kind == QEvent.Type.MouseButtonRelease and self._painting and event.button() == left:
            self._painting = False
            self.model.release()
        else:
            return False
        self.lasso.setData(*self._lasso_points())
        return True

    def _lasso_points(self) -> tuple[list, list]:
        pts = self.model.polygon_points
        pts = pts + pts[:1] if pts else pts
        return [px + 0.5 for _, px in pts], [py + 0.5 for py, _ in pts]

    def _show_cursor(self, x: float, y: float) -> None:
        tool = self.model.tool
        self.brush_cursor.place(x, y, tool.radius if tool.tool in ("brush", "eraser") else None)

    def update_labels(self, box) -> None:
        """Redraw after an edit: only the changed box of the overlay while painting."""
        if self.item is None:
            return
        mask = self.mask
        if box is None or mask is None or self._rgba is None or not self.editing or self.bool_uncertainty.isChecked():
            self.redraw()
            return
        _, pred, labels = self.planes()
        h, w = labels.shape
        y0, y1, x0, x1 = max(box[0] - 1, 0), min(box[1] + 1, h), max(box[2] - 1, 0), min(box[3] + 1, w)
        self._rgba[y0:y1, x0:x1] = overlay.compose_edit(labels[y0:y1, x0:x1], pred[y0:y1, x0:x1],
                                                self.bool_show_pred.isChecked(), self.combo_style.currentIndex() == 1)
        self.mask_item.updateImage(self._rgba)

    def fit(self) -> None:
        """Show the whole image."""
        if self._shown_shape is not None:
            h, w = self._shown_shape
            self.viewbox.setRange(QRectF(0, 0, w, h), padding=0)

    def set_frame(self, frame) -> None:
        """The current item's decoded frame arrived (None: the item has no modality values)."""
        if frame is not None:
            self.frame = frame
            self._show_image()

    def clear(self) -> None:
        self.item, self.frame = None, None
        self.image_item.clear()
        self.mask_item.clear()
        self.placeholder.setVisible(True)
        self.label_info.setText("")
        self.label_readout.clear()

    def _show_image(self) -> None:
        image = self.frame.values if self.frame is not None else self.planes()[0]
        self._set_level_range(self.frame)
        self.image_item.setImage(image, autoLevels=False, levels=self.slider_levels.value())
        # The overlay (training size) is stretched over the image (original size for DICOM).
        rect = QRectF(0, 0, image.shape[1], image.shape[0])
        self.image_item.setRect(rect)
        self.mask_item.setRect(rect)
        if image.shape[:2] != self._shown_shape:  # e.g. a slice decoded at its own size: refit
            self._shown_shape = image.shape[:2]
            self.fit()
        if self.item.is_scan:
            self.label_slice.setText(f"{self.slice + 1}/{len(self.item.pred)}")
        self.redraw()

    @Slot()
    def redraw(self, *_args) -> None:
        if self.item is None:
            return
        _, pred, target = self.planes()
        outline = self.combo_style.currentIndex() == 1
        uncertainty = self.uncertainty_plane() if self.bool_uncertainty.isChecked() else None
        if uncertainty is not None:
            rgba = overlay.heat(uncertainty)
        elif self.editing and self.mask is not None:
            rgba = overlay.compose_edit(target, pred, self.bool_show_pred.isChecked(), outline)
        else:
            rgba = overlay.compose(pred, target, self.bool_show_pred.isChecked(), self.bool_show_truth.isChecked(),
                           outline, self.bool_compare.isChecked())
        self._rgba = rgba
        self.mask_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self._update_legend()

    def _update_legend(self) -> None:
        if self.bool_compare.isChecked() and self.item is not None and self.item.target is not None:
            parts = list(COMPARE.values())
        else:
            parts = [(str(c), overlay.class_color(k)) for k, c in enumerate(self.codes) if k > 0]
        shown = parts[:LEGEND_CLASSES]
        text = "  ".join(f"<span style='color:rgb{tuple(col)}'>■</span> {name}" for name, col in shown)
        if len(parts) > len(shown):
            text += f"  … +{len(parts) - len(shown)} more"
        self.label_legend.setText(text)
        self.label_legend.setToolTip("\n".join(name for name, _ in parts))

    # -- what is under the cursor ------------------------------------------------------------
    def _on_mouse(self, pos) -> None:
        self.label_readout.setText(self.readout(self.viewbox.mapSceneToView(pos)) if self.item else "")

    def readout(self, point) -> str:
        """"x 12, y 40 · 52 HU · prediction liver · truth liver" at a point in image pixels."""
        image, pred, target = self.planes()
        image = self.frame.values if self.frame is not None else image
        x, y = int(math.floor(point.x())), int(math.floor(point.y()))
        h, w = image.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            return ""
        value = image[y, x]
        shown = (f"{float(value):.0f} {self._level_unit or ''}".rstrip() if np.ndim(value) == 0
                 else "RGB " + ", ".join(str(int(v)) for v in value))
        parts = [f"x {x}, y {y}", shown]
        for label, mask in (("prediction", pred), ("truth", target)):
            if mask is not None:
                my, mx = y * mask.shape[0] // h, x * mask.shape[1] // w  # the mask may be smaller
                k = int(mask[my, mx])
                parts.append(f"{label} {self.codes[k] if k < len(self.codes) else k}")
        return " · ".join(parts)
