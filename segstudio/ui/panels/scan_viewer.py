"""The three-plane scan viewer: axial, coronal and sagittal planes of one scan side by side (or one
maximised), linked by one cursor in world coordinates (editing/viewer_state.py), at full
resolution and to scale, in the scan's own units with window/level and the CT presets; overlays
(prediction, ground truth, compare, uncertainty) per class, and the labelling tools in any plane
(editing/scan_edit.py), whose edits go into the review's one undo history."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QSizePolicy, QSlider, QToolButton, QVBoxLayout, QWidget)
from superqt.utils import signals_blocked

from segstudio.editing.history import Edit
from segstudio.editing.review_model import ReviewModel
from segstudio.editing.scan_edit import STROKE_TOOLS, ScanEditor, interpolate_task
from segstudio.editing.scan_loading import ScanData
from segstudio.editing.viewer_state import KEY_STEPS, OVERLAYS, ViewerState
from segstudio.inference.review import ReviewItem
from segstudio.palette import COMPARE
from segstudio.preprocess.windowing import WINDOW_PRESETS
from segstudio.ui import overlay
from segstudio.ui.panels.scan_plane import KEYS, ScanPlane
from segstudio.ui.panels.scan_tools import ScanTools
from segstudio.ui.tasks import TaskRunner

OVERLAY_NAMES = {"prediction": "Prediction", "truth": "Ground truth", "compare": "Compare",
                 "uncertainty": "Uncertainty"}
NOTE_STYLE = "color: #975a16; background: #fefcbf; padding: 3px;"
EDITING_FRAME = "QGraphicsView { border: 3px solid #dd6b20; }"
MAX_CLASS_TOGGLES = 12


class ScanViewer(QWidget):
    """Shows a ScanData (editing/scan_loading.py). With a ReviewModel (the review's), corrections
    join its history and saving; alone it makes its own."""

    def __init__(self, model: ReviewModel | None = None, parent=None):
        super().__init__(parent)
        self.setObjectName("scan_viewer")
        self.model = model or ReviewModel()
        self.model.listen(self._on_model)
        self.data: ScanData | None = None
        self.state: ViewerState | None = None
        self.editor: ScanEditor | None = None
        self.planes: list[ScanPlane] = []
        self.hovered: ScanPlane | None = None
        self.editing = False
        self.last_axis = 0  # the plane last painted in: interpolation goes across it
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        controls = QWidget(objectName="scan_controls")
        controls.setLayout(self._build_controls())
        self.tools = ScanTools()
        for row in (controls, self.tools):  # a narrow window clips them rather than widen
            row.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        v.addWidget(controls)
        self.tools.install_shortcuts(self)
        self.tools.interpolate_requested.connect(self.interpolate)
        self.tools.accept_requested.connect(self.accept)
        v.addWidget(self.tools)
        self.label_note = QLabel("", objectName="label_scan_note", wordWrap=True)
        self.label_note.setStyleSheet(NOTE_STYLE)
        self.label_note.setVisible(False)
        v.addWidget(self.label_note)
        self.area = QWidget(objectName="scan_planes")
        self.area.setStyleSheet("background: #1a202c;")
        self.row = QHBoxLayout(self.area)
        self.row.setContentsMargins(0, 0, 0, 0)
        self.row.setSpacing(3)
        self.placeholder = QLabel("", alignment=Qt.AlignmentFlag.AlignCenter, objectName="label_scan_placeholder")
        self.placeholder.setStyleSheet("color: #a0aec0;")
        self.row.addWidget(self.placeholder)
        v.addWidget(self.area, 1)
        bottom = QHBoxLayout()
        self.label_info = QLabel("", objectName="label_scan_info")
        self.label_info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bottom.addWidget(self.label_info, 1)
        self.label_legend = QLabel("", objectName="label_scan_legend")
        self.label_legend.setText("  ".join(f"<span style='color:rgb{tuple(col)}'>■</span> {name}"
                                            for name, col in COMPARE.values()))
        bottom.addWidget(self.label_legend)
        self.label_readout = QLabel("", objectName="label_scan_readout")
        self.label_readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.progress = QProgressBar(objectName="progress_scan", textVisible=True, maximumWidth=320)
        self.button_cancel = QPushButton("Cancel", objectName="button_scan_cancel")
        bottom.addWidget(self.label_readout, 1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.button_cancel)
        v.addLayout(bottom)
        self.runner = TaskRunner(self, "scan", self.progress, on_error=lambda m, d: self.show_note(m))
        self.runner.busy_changed.connect(self._on_busy)
        self.button_cancel.clicked.connect(self.runner.cancel)
        self._on_busy(False)
        self._enable(False)

    def _build_controls(self) -> QHBoxLayout:
        self.combo_overlay = QComboBox(objectName="combo_scan_overlay")
        for mode in OVERLAYS:
            self.combo_overlay.addItem(OVERLAY_NAMES[mode], mode)
        self.combo_overlay.setToolTip("Compare: green correct, red false positive, blue missed,\n"
                                      "yellow wrong class (another foreground class predicted)")
        self.combo_overlay.currentIndexChanged.connect(
            lambda i: self.state and self.state.cursor.set_overlay(self.combo_overlay.itemData(i)))
        self.class_row = QHBoxLayout()
        self.class_buttons: list[QToolButton] = []
        self.slider_opacity = QSlider(Qt.Orientation.Horizontal, objectName="slider_scan_opacity",
                                      minimum=0, maximum=100, value=50)
        self.slider_opacity.setFixedWidth(70)
        self.slider_opacity.valueChanged.connect(lambda v: self.state and self.state.cursor.set_opacity(v / 100))
        self.combo_style = QComboBox(objectName="combo_scan_style")
        self.combo_style.addItems(["Filled", "Contour"])
        self.combo_style.currentIndexChanged.connect(lambda i: self.state and self.state.cursor.set_filled(i == 0))
        self.spin_width = QDoubleSpinBox(objectName="spin_window_width", minimum=1, maximum=1e6, decimals=0,
                                         prefix="W ")
        self.spin_level = QDoubleSpinBox(objectName="spin_window_level", minimum=-1e6, maximum=1e6, decimals=0,
                                         prefix="L ")
        for s in (self.spin_width, self.spin_level):
            s.setFixedWidth(96)
            s.setToolTip("Window width and level in the scan's own units (HU for CT)")
            s.valueChanged.connect(self._window_edited)
        self.combo_preset = QComboBox(objectName="combo_scan_preset")
        self.combo_preset.addItem("Preset…")
        self.combo_preset.addItems(list(WINDOW_PRESETS))
        self.combo_preset.setToolTip("CT window presets (width/level in HU)")
        self.combo_preset.activated.connect(self._preset_chosen)
        self.button_layout = QToolButton(objectName="button_scan_layout", text="One plane")
        self.button_layout.setToolTip("One plane or three (double-click a plane does the same)")
        self.button_layout.clicked.connect(self._toggle_layout)
        self.button_fit = QToolButton(objectName="button_scan_fit", text="Fit")
        self.button_fit.setToolTip("Reset zoom and pan of every plane (Ctrl+wheel zooms, the middle or\n"
                                   "right button drags the view)")
        self.button_fit.clicked.connect(self.fit)
        h = QHBoxLayout()
        h.setContentsMargins(0, 0, 0, 0)
        h.addWidget(self.combo_overlay)
        h.addLayout(self.class_row)
        self.slider_opacity.setToolTip("Opacity of the overlay")
        for w in (self.slider_opacity, self.combo_style, self.spin_width, self.spin_level,
                  self.combo_preset, self.button_layout, self.button_fit):
            h.addWidget(w)
        h.addStretch(1)
        return h

    # -- the scan -----------------------------------------------------------------------------
    @property
    def values(self) -> np.ndarray:
        return self.data.values

    def set_data(self, data: ScanData | None) -> None:
        """Show a scan (None: nothing). Its labels join the model's masks (alone: with an item
        of their own, so undo finds them)."""
        for plane in self.planes:
            self.row.removeWidget(plane)
            plane.deleteLater()
        self.planes, self.hovered, self.data, self.state, self.editor = [], None, data, None, None
        self.placeholder.setVisible(data is None)
        self._enable(data is not None)
        if data is None:
            self.show_note("")
            self.label_legend.setVisible(False)
            return
        self.state = state = ViewerState(data.geometry, max(len(data.codes), 2), data.window)
        c = state.cursor
        c.set_overlay(self.combo_overlay.currentData() if self._overlay_ok(self.combo_overlay.currentData())
                      else "prediction" if data.pred is not None else "truth")
        preset = next((n for n, w in WINDOW_PRESETS.items() if data.unit == "HU" and w == tuple(data.window)), "")
        if preset:  # CT opens at the abdomen preset, named in the box
            c.set_preset(preset)
        c.set_opacity(self.slider_opacity.value() / 100)
        c.set_filled(self.combo_style.currentIndex() == 0)
        self._set_codes(data.codes)
        if data.labels is not None:  # open where the labels are, else in the middle
            c.set_voxel(self._centre_of(data.labels))
        elif data.pred is not None:
            c.set_voxel(self._centre_of(data.pred))
        if data.mask is not None:
            kept = self.model.masks.get(data.mask.key)
            if kept is not data.mask and kept is not None and kept.unsaved and kept.labels.shape == data.geometry.shape:
                data.mask = kept  # reopened with unsaved corrections: those
            self.editor = ScanEditor(data.mask, data.values)
            self.editor.tool = self.tools.tool
            if self.model.item is None or self.model.item.source != data.mask.key:
                self.model.set_items([_own_item(data)], data.mask.ctx)
                self.model.select(0)
            self.model.masks[data.mask.key] = data.mask
        for view in state.views:
            plane = ScanPlane(self, view)
            self.planes.append(plane)
            self.row.addWidget(plane, 1)
            view.connect(lambda change, p=plane: self._on_view(p, change))
        c.connect(self._on_cursor)
        self._sync_controls()
        self.label_legend.setVisible(c.overlay == "compare")
        self.set_editing(self.editing)
        self.show_note("\n".join(data.notes))
        self.model.slice = state.cursor.index[0]

    def show_message(self, text: str) -> None:
        """No scan, a word instead (loading, or why it cannot be shown)."""
        self.set_data(None)
        self.placeholder.setText(text)

    def show_note(self, text: str) -> None:
        self.label_note.setText(text)
        self.label_note.setVisible(bool(text))

    @staticmethod
    def _centre_of(labels: np.ndarray) -> np.ndarray | None:
        """The voxel at the middle of the labelled region's box (the middle when empty)."""
        found = [np.flatnonzero(labels.any(axis=tuple(o for o in range(3) if o != a))) for a in range(3)]
        if any(len(f) == 0 for f in found):
            return np.asarray(labels.shape) // 2
        return np.array([(f[0] + f[-1]) // 2 for f in found])

    def overlay_arrays(self) -> tuple:
        """(ground truth as corrected, prediction, uncertainty) volumes, each None when absent."""
        d = self.data
        mask = d.mask
        return d.labels, d.pred, None if mask is None else mask.uncertainty

    def _overlay_ok(self, mode) -> bool:
        d = self.data
        return d is not None and {"prediction": d.pred is not None, "truth": d.labels is not None,
                                  "compare": d.pred is not None and d.labels is not None,
                                  "uncertainty": d.mask is not None and d.mask.uncertainty is not None}[mode]

    def _set_codes(self, codes) -> None:
        for b in self.class_buttons:
            self.class_row.removeWidget(b)
            b.deleteLater()
        self.class_buttons = []
        for k, name in list(enumerate(codes))[1:MAX_CLASS_TOGGLES + 1]:
            pix = QPixmap(10, 10)
            pix.fill(QColor(*overlay.class_color(k)))
            b = QToolButton(objectName=f"button_show_class_{k}", checkable=True, checked=True, text=str(name))
            b.setIcon(QIcon(pix))
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            b.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)  # names not elided
            b.setToolTip(f"Show or hide {name}")
            b.toggled.connect(lambda on, k=k: self.state and self.state.cursor.set_visible(k, on))
            self.class_row.addWidget(b)
            self.class_buttons.append(b)
        self.tools.set_codes(codes)

    def _sync_controls(self) -> None:
        c = self.state.cursor
        model = self.combo_overlay.model()
        for i in range(self.combo_overlay.count()):
            model.item(i).setEnabled(self._overlay_ok(self.combo_overlay.itemData(i)))
        with signals_blocked(self.combo_overlay):
            self.combo_overlay.setCurrentIndex(self.combo_overlay.findData(c.overlay))
        with signals_blocked(self.spin_width), signals_blocked(self.spin_level):
            self.spin_width.setValue(c.width)
            self.spin_level.setValue(c.level)
        unit = f" {self.data.unit}" if self.data.unit else ""
        self.spin_width.setSuffix(unit)
        self.spin_level.setSuffix(unit)
        self.combo_preset.setEnabled(self.data.unit == "HU")
        self.combo_preset.setCurrentIndex(max(self.combo_preset.findText(c.preset), 0))
        self.button_layout.setText("Three planes" if self.state.maximised else "One plane")
        self.tools.setVisible(self.editing and self.editor is not None)  # the tools while correcting

    def _enable(self, on: bool) -> None:
        for w in (self.combo_overlay, self.slider_opacity, self.combo_style, self.spin_width, self.spin_level,
                  self.combo_preset, self.button_layout, self.button_fit):
            w.setEnabled(on)

    # -- following the state --------------------------------------------------------------------
    def _on_cursor(self, change) -> None:
        if "window" in change.fields or "overlay" in change.fields:
            self._sync_controls()
            self.label_legend.setVisible(self.state.cursor.overlay == "compare")
        if "point" in change.fields:
            self.model.slice = self.state.cursor.index[0]  # the review's "A" accepts this axial slice

    def _on_view(self, plane: ScanPlane, change) -> None:
        if "layout" in change.fields:
            shown = self.state.shown
            for p in self.planes:
                p.setVisible(p.view in shown)
            self.button_layout.setText("Three planes" if self.state.maximised else "One plane")

    def _toggle_layout(self) -> None:
        if self.state is not None:
            one = self.state.maximised
            axis = one.axis if one is not None else (self.hovered or self.planes[0]).view.axis
            self.state.toggle_maximised(axis)

    def fit(self) -> None:
        if self.state is not None:
            for view in self.state.views:
                view.reset_camera()

    def _window_edited(self, *_args) -> None:
        if self.state is not None:
            self.state.cursor.set_window(self.spin_width.value(), self.spin_level.value())

    def _preset_chosen(self, index: int) -> None:
        name = self.combo_preset.itemText(index)
        if self.state is not None and name in WINDOW_PRESETS:
            self.state.cursor.set_preset(name)

    def step_hovered(self, delta: int) -> bool:
        """Step the plane under the mouse (the last one there; axial at first)."""
        if not self.planes:
            return False
        plane = self.hovered or self.planes[0]
        return plane.view.step(delta)

    def keyPressEvent(self, event) -> None:
        name = KEYS.get(event.key())
        if name is not None and self.planes:
            self.step_hovered(KEY_STEPS[name])
            return
        super().keyPressEvent(event)

    # -- editing --------------------------------------------------------------------------------
    def set_editing(self, on: bool) -> None:
        self.editing = bool(on)
        for p in self.planes:
            p.graphics.setStyleSheet(EDITING_FRAME if on and self.editor is not None else "")
            p.brush.setVisible(False)
        self.tools.setVisible(self.editing and self.editor is not None)  # the tools while correcting

    def _can_paint(self) -> bool:
        return self.editing and self.editor is not None and not self.runner.busy

    def paint_press(self, plane: ScanPlane, row: float, col: float) -> bool:
        """A left press in a plane: True when it started a tool (else it moves the cursor)."""
        if not self._can_paint():
            return False
        v = plane.view
        self.last_axis = v.axis
        u, w = v.geometry.to_plane(v.axis, row, col)
        result = self.editor.press(v.axis, v.index, u, w)
        if self.editor.stroking:
            self._redraw_stroke(plane, result)
        else:
            self._record(result)
        return True

    def paint_drag(self, plane: ScanPlane, row: float, col: float) -> None:
        if self.editor is not None and self.editor.stroking:
            v = plane.view
            self._redraw_stroke(plane, self.editor.drag(*v.geometry.to_plane(v.axis, row, col)))

    def paint_release(self, plane: ScanPlane) -> None:
        if self.editor is not None and self.editor.stroking:
            self._record(self.editor.release())

    def _redraw_stroke(self, plane: ScanPlane, box) -> None:
        """While painting: only the part of the plane the last segment changed."""
        if box is None:
            return
        v = plane.view
        rows, cols = v.geometry.plane_shape(v.axis)
        (fr, fc) = v.geometry.flips(v.axis)
        u0, u1, w0, w1 = box
        r0, r1 = (rows - u1, rows - u0) if fr else (u0, u1)
        c0, c1 = (cols - w1, cols - w0) if fc else (w0, w1)
        plane.redraw_overlay((r0, r1, c0, c1))

    def _record(self, change) -> None:
        if change is None:
            if self.editor.note:
                self.model._emit("warning", self.editor.note)
            self.redraw_overlays()
            return
        self.model.record(self.data.mask, self.data.mask.record(change))

    def accept(self, scope: str) -> None:
        if not self._can_paint():
            return
        plane = self.hovered or self.planes[0]
        self._record(self.editor.accept(scope, plane.view.axis, plane.view.index))

    def interpolate(self) -> bool:
        """Interpolate the chosen class between its labelled slices across the plane last
        painted in, in the task runner; the result is applied (one undoable edit) when done."""
        if not self._can_paint():
            return False
        snapshot = self.data.mask.labels.copy()
        axis, name = self.last_axis, self.state.views[self.last_axis].name
        return self.runner.start(interpolate_task, snapshot, axis, self.tools.tool.label,
                                 self.data.geometry.spacing, label=f"Interpolating {name} slices…",
                                 on_done=self._on_interpolated)

    def _on_interpolated(self, change) -> None:
        if self.editor is None:
            return
        try:
            self._record(self.editor.apply(change))
        except ValueError as e:  # the labels changed meanwhile
            self.show_note(str(e))

    def _on_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.button_cancel.setVisible(busy)

    def undo(self) -> Edit | None:
        return self.model.undo()

    def redo(self) -> Edit | None:
        return self.model.redo()

    def _on_model(self, what: str, detail) -> None:
        if self.data is None or self.data.mask is None:
            return
        if what == "labels" and self.model.mask is self.data.mask:
            if detail is not None and len(detail) == 6 and self.state is not None:
                self._show_box(detail)
            self.redraw_overlays()
        elif what == "tool":
            t = self.model.tool
            keep = t.tool if t.tool in STROKE_TOOLS + ("fill",) else None
            self.tools.set_tool(keep, radius=t.radius, label=t.label)

    def _show_box(self, box) -> None:
        """Move the cursor into an edited box it is not in (an undo far away)."""
        idx = self.state.cursor.index
        if all(box[2 * a] <= idx[a] < box[2 * a + 1] for a in range(3) if box[2 * a + 1] - box[2 * a] == 1):
            return
        voxel = self.state.cursor.voxel
        for a in range(3):
            if not box[2 * a] <= idx[a] < box[2 * a + 1]:
                voxel[a] = (box[2 * a] + box[2 * a + 1] - 1) // 2
        self.state.cursor.set_voxel(voxel)

    def redraw_overlays(self) -> None:
        for p in self.planes:
            p.redraw_overlay()

    # -- under the mouse ------------------------------------------------------------------------
    def hover(self, plane: ScanPlane, row: float, col: float) -> None:
        v = plane.view
        t = self.tools.tool
        painting = self._can_paint() and t.tool in STROKE_TOOLS
        plane.show_brush(row, col, t.radius if painting else None)
        self.label_readout.setText(self.readout(v.axis, v.index, row, col))

    def readout(self, axis: int, index: int, row: float, col: float) -> str:
        """"z 12, y 40, x 33 · 52 HU · truth liver · prediction liver" at a display position."""
        g = self.data.geometry
        rows, cols = g.plane_shape(axis)
        if not (0 <= row < rows and 0 <= col < cols):
            return ""
        voxel = g.to_voxel(axis, index, row, col)
        parts = [f"z {voxel[0]}, y {voxel[1]}, x {voxel[2]}",
                 f"{float(self.values[voxel]):.0f} {self.data.unit}".rstrip()]
        codes = self.data.codes
        for name, labels in (("truth", self.data.labels), ("prediction", self.data.pred)):
            if labels is not None:
                k = int(labels[voxel])
                parts.append(f"{name} {codes[k] if k < len(codes) else k}")
        return " · ".join(parts)


def _own_item(data: ScanData) -> ReviewItem:
    """A stand-in review item for a viewer used alone (the model finds edits by item)."""
    empty = np.zeros((1, 1, 1), np.uint8)
    return ReviewItem(-1, data.name, empty, None, empty, (), float("nan"), source=data.mask.key)
