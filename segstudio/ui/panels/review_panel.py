"""Review area: predictions over their images, worst first; compare mode; predict/export a folder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView,
    QLabel, QProgressBar, QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout,
    QWidget,
)
from superqt import QLabeledSlider, QRangeSlider

from segstudio.data.windowing import WINDOW_PRESETS
from segstudio.ui import overlay, resources
from segstudio.ui.panels import plots  # noqa: F401  (pyqtgraph config: row-major images)
from segstudio.workers import TaskWorker, predict_folder_task, review_task

GT_OUTLINE = (255, 255, 255)


class NumItem(QTableWidgetItem):
    """A table cell that sorts by number; NaN (class absent) sorts after every number."""

    def __init__(self, value: float):
        super().__init__("—" if not math.isfinite(value) else f"{value:.3f}")
        self.value = float(value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other):
        key = lambda v: v if math.isfinite(v) else math.inf  # noqa: E731
        return key(self.value) < key(getattr(other, "value", math.inf))


def compose(item, show_pred: bool, show_truth: bool, outline: bool, compare: bool) -> np.ndarray:
    """The RGBA overlay for one ReviewItem under the current display options."""
    pred, target = np.asarray(item.pred), np.asarray(item.target)
    if compare:
        return overlay.compare(target, pred)
    rgba = np.zeros(pred.shape + (4,), dtype=np.uint8)
    if show_pred:
        rgba = overlay.colorize(pred, outline=outline)
    if show_truth:
        if show_pred:  # truth as a white outline over the prediction
            edge = overlay.contour(target)
            rgba[edge, :3] = GT_OUTLINE
            rgba[edge, 3] = 255
        else:
            rgba = overlay.colorize(target, outline=outline)
    return rgba


class ReviewPanel(QWidget):
    """Shows ReviewItems (computed in a worker) in a zoomable view with a class-coloured overlay."""

    busy_changed = Signal(bool)
    message = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("panel_review")
        self.items: list = []
        self.last_export = None  # the PredictionReport of the last "Predict folder"
        self.codes: tuple[str, ...] = ()
        self.run_dir = ""  # the run whose model is loaded
        self._loading_run = ""
        self.predictor = None
        self.dataset = None
        self._frames: dict[int, object] = {}  # dataset index -> ModalityFrame or None
        self.current = -1
        self._worker: TaskWorker | None = None
        self._build()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.table_review = QTableWidget(0, 2, objectName="table_review")
        self.table_review.setHorizontalHeaderLabels(["Image", "Dice"])
        self.table_review.verticalHeader().setVisible(False)
        self.table_review.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table_review.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table_review.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table_review.setAlternatingRowColors(True)
        self.table_review.setSortingEnabled(True)
        self.table_review.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table_review.horizontalHeader().setStretchLastSection(True)
        self.table_review.currentCellChanged.connect(lambda r, *_: self._show_row(r))
        # sorting moves the current row: refresh its "(k/n)" position once the sort is done
        self.table_review.horizontalHeader().sortIndicatorChanged.connect(
            lambda *_: QTimer.singleShot(0, self._update_info))
        self.label_run = QLabel("No run loaded. Train a model or use File ▸ Open run.",
                                objectName="label_run", wordWrap=True)
        self.progress_review = QProgressBar(objectName="progress_review", textVisible=True)
        self.progress_review.setFormat("Idle")
        self.progress_review.setValue(0)
        self.button_open_run = QPushButton(resources.icon("run"), "Open run…", objectName="button_open_run")
        self.button_predict = QPushButton(resources.icon("export"), "Predict folder…",
                                          objectName="button_predict_folder", enabled=False)
        self.button_predict.setToolTip("Predict every image of a folder and save the masks as PNG\n"
                                       "(and as DICOM SEG for DICOM series)")
        self.button_open_run.clicked.connect(self.choose_run)
        self.button_predict.clicked.connect(lambda: self.export_masks())
        left = QGroupBox("Validation images")
        left.setMinimumWidth(340)
        lv = QVBoxLayout(left)
        lv.addWidget(self.label_run)
        lv.addWidget(self.table_review, 1)
        lv.addWidget(self.progress_review)
        row = QHBoxLayout()
        row.addWidget(self.button_open_run)
        row.addWidget(self.button_predict)
        lv.addLayout(row)

        self.view_review = pg.GraphicsLayoutWidget()
        self.view_review.setObjectName("view_review")
        self.viewbox = self.view_review.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view_review.setBackground("#1a202c")
        self.image_item = pg.ImageItem()
        self.mask_item = pg.ImageItem()
        self.mask_item.setZValue(1)
        self.viewbox.addItem(self.image_item)
        self.viewbox.addItem(self.mask_item)
        self.placeholder = pg.TextItem("Predictions appear here after a run finishes\n"
                                       "(or File ▸ Open run…)", color="#a0aec0", anchor=(0.5, 0.5))
        self.viewbox.addItem(self.placeholder)
        self.placeholder.setPos(0, 0)
        self.viewbox.setRange(xRange=(-1, 1), yRange=(-1, 1))
        self.view_review.installEventFilter(self)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addLayout(self._build_controls())
        rv.addWidget(self.view_review, 1)
        self.label_info = QLabel("", objectName="label_review_info")
        rv.addWidget(self.label_info)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([400, 800])
        QVBoxLayout(self).addWidget(split)

    def _build_controls(self) -> QVBoxLayout:
        self.bool_show_pred = QCheckBox("Prediction", objectName="bool_show_pred", checked=True)
        self.bool_show_truth = QCheckBox("Ground truth", objectName="bool_show_truth")
        self.bool_compare = QCheckBox("Compare (TP/FP/FN)", objectName="bool_compare")
        self.bool_compare.setToolTip("Green: correct, red: false positive, blue: missed")
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
        self._level_unit: str | None = None  # None: 8-bit display values; else DICOM units ("HU", "")
        self.slider_levels.valueChanged.connect(self._show_levels)
        for w in (self.bool_show_pred, self.bool_show_truth, self.bool_compare):
            w.toggled.connect(self.redraw)
        self.combo_style.currentIndexChanged.connect(self.redraw)
        self.slider_opacity.valueChanged.connect(
            lambda v: self.mask_item.setOpacity(v / 100.0))
        top = QHBoxLayout()
        for w in (self.bool_show_pred, self.bool_show_truth, self.bool_compare, self.combo_style):
            top.addWidget(w)
        top.addStretch(1)
        self.label_legend = QLabel("", objectName="label_legend")
        top.addWidget(self.label_legend)
        bottom = QHBoxLayout()
        self.combo_preset = QComboBox(objectName="combo_window_preset", enabled=False)
        self.combo_preset.addItem("Preset…")
        self.combo_preset.addItems(list(WINDOW_PRESETS))
        self.combo_preset.setToolTip("CT window presets (width/level in HU)")
        self.combo_preset.activated.connect(self._apply_preset)
        for w in (QLabel("Opacity"), self.slider_opacity, QLabel("   Window"), self.slider_levels,
                  self.label_levels, self.combo_preset):
            bottom.addWidget(w)
        bottom.addStretch(1)
        h = QVBoxLayout()
        h.addLayout(top)
        h.addLayout(bottom)
        self.mask_item.setOpacity(0.5)
        return h

    # -- data --------------------------------------------------------------------------------
    def set_items(self, items: list, codes: tuple[str, ...] = ()) -> None:
        self.items = list(items)
        self._frames = {}
        self.codes = tuple(codes) or tuple(f"class {i}" for i in range(len(items[0].dice))) \
            if items else tuple(codes)
        fg = list(range(1, len(self.codes)))
        t = self.table_review
        t.setSortingEnabled(False)
        t.clearContents()
        t.setColumnCount(2 + len(fg))
        t.setHorizontalHeaderLabels(["Image", "Dice"] + [str(self.codes[k]) for k in fg])
        t.setRowCount(len(self.items))
        for row, item in enumerate(self.items):
            name = QTableWidgetItem(str(item.name))
            name.setData(Qt.ItemDataRole.UserRole, row)
            t.setItem(row, 0, name)
            t.setItem(row, 1, NumItem(float(item.dice_mean)))
            for col, k in enumerate(fg, start=2):
                t.setItem(row, col, NumItem(float(item.dice[k]) if k < len(item.dice) else math.nan))
        t.setSortingEnabled(True)
        t.sortItems(1, Qt.SortOrder.AscendingOrder)
        self._update_legend()
        if self.items:
            t.setCurrentCell(0, 0)
            self._show_row(0)
            self.viewbox.autoRange(padding=0)

    def _item_at_row(self, row: int):
        cell = self.table_review.item(row, 0) if row >= 0 else None
        if cell is None:
            return None, -1
        index = int(cell.data(Qt.ItemDataRole.UserRole))
        return self.items[index], index

    def _show_row(self, row: int) -> None:
        item, index = self._item_at_row(row)
        if item is None:
            return
        first = self.current < 0
        self.current = index
        self.placeholder.setVisible(False)
        frame = self._modality_frame(item)
        image = frame.values if frame is not None else item.image  # (S, S) or (S, S, 3) uint8
        self._set_level_range(frame)
        self.image_item.setImage(image, autoLevels=False, levels=self.slider_levels.value())
        # The overlay (training size) is stretched over the image (original size for DICOM).
        rect = QRectF(0, 0, image.shape[1], image.shape[0])
        self.image_item.setRect(rect)
        self.mask_item.setRect(rect)
        self.redraw()
        self._update_info()
        if first:
            self.viewbox.autoRange(padding=0)

    def _update_info(self) -> None:
        row = self.table_review.currentRow()
        item, _ = self._item_at_row(row)
        if item is not None:
            self.label_info.setText(f"{item.name} — mean Dice {float(item.dice_mean):.3f}  "
                                    f"({row + 1}/{len(self.items)}, ↑/↓ to step)")

    def _modality_frame(self, item):
        """The item's DICOM frame in modality units (HU for CT), or None to show the 8-bit image;
        each file is decoded once per review (stepping back and forth reuses it)."""
        ds = self.dataset
        if ds is None or not 0 <= item.index < len(ds.sources):
            return None
        if item.index not in self._frames:
            from segstudio.data.dicom import read_modality_frame
            from segstudio.data.windowing import parse_window

            self._frames[item.index] = read_modality_frame(ds.sources[item.index], ds.frames[item.index],
                                                           parse_window(ds.window))
        return self._frames[item.index]

    def _set_level_range(self, frame) -> None:
        """Slider range in the displayed units; reset to the training window when they change."""
        if frame is None:
            lo, hi, unit, default = 0, 255, None, (0, 255)
        else:
            width, level = frame.window
            default = (math.floor(level - width / 2), math.ceil(level + width / 2))
            lo = min(math.floor(float(frame.values.min())), default[0])
            hi = max(math.ceil(float(frame.values.max())), default[1], lo + 1)
            unit = frame.unit
        slider = self.slider_levels
        self.combo_preset.setEnabled(unit == "HU")
        if unit != self._level_unit:
            self._level_unit = unit
            slider.setRange(lo, hi)
            slider.setValue(default)
        elif unit is not None:
            keep = slider.value()
            slider.setRange(min(lo, slider.minimum()), max(hi, slider.maximum()))
            slider.setValue(keep)
        self._show_levels(slider.value())

    @Slot(int)
    def _apply_preset(self, index: int) -> None:
        name = self.combo_preset.itemText(index)
        if name in WINDOW_PRESETS and self._level_unit == "HU":
            width, level = WINDOW_PRESETS[name]
            lo, hi = math.floor(level - width / 2), math.ceil(level + width / 2)
            slider = self.slider_levels
            slider.setRange(min(lo, slider.minimum()), max(hi, slider.maximum()))
            slider.setValue((lo, hi))
        self.combo_preset.setCurrentIndex(0)

    @Slot(object)
    def _show_levels(self, value) -> None:
        lo, hi = (float(v) for v in value)
        self.image_item.setLevels((lo, hi))
        if self._level_unit is None:
            self.label_levels.setText(f"{int(lo)}–{int(hi)}")
        else:
            self.label_levels.setText(f"W {hi - lo:.0f} L {(lo + hi) / 2:.0f} {self._level_unit}".rstrip())

    @Slot()
    def redraw(self, *_args) -> None:
        if not (0 <= self.current < len(self.items)):
            return
        item = self.items[self.current]
        rgba = compose(item, self.bool_show_pred.isChecked(), self.bool_show_truth.isChecked(),
                       self.combo_style.currentIndex() == 1, self.bool_compare.isChecked())
        self.mask_item.setImage(rgba, autoLevels=False, levels=(0, 255))
        self._update_legend()

    def _update_legend(self) -> None:
        if self.bool_compare.isChecked():
            parts = [("correct", overlay.TP_COLOR), ("false positive", overlay.FP_COLOR),
                     ("missed", overlay.FN_COLOR)]
        else:
            parts = [(str(c), overlay.class_color(k)) for k, c in enumerate(self.codes) if k > 0]
        self.label_legend.setText("  ".join(
            f"<span style='color:rgb{tuple(col)}'>■</span> {name}" for name, col in parts))

    def step(self, delta: int) -> None:
        t = self.table_review
        if t.rowCount():
            row = min(max(t.currentRow() + delta, 0), t.rowCount() - 1)
            t.setCurrentCell(row, 0)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # arrow keys over the image
        if obj is self.view_review and event.type() == QEvent.Type.KeyPress:
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Right, Qt.Key.Key_PageDown):
                self.step(1)
                return True
            if key in (Qt.Key.Key_Up, Qt.Key.Key_Left, Qt.Key.Key_PageUp):
                self.step(-1)
                return True
        return super().eventFilter(obj, event)

    # -- workers -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None

    def _start(self, fn, name: str, on_result, label: str) -> bool:
        if self._worker is not None:
            self.message.emit("warning", "The review panel is busy; wait or cancel first.")
            return False
        w = TaskWorker(fn, name, self)
        w.progress.connect(self._on_progress)
        w.result.connect(on_result)
        w.failed.connect(lambda m, d: self._on_failed(m, d))
        w.cancelled.connect(lambda: self.progress_review.setFormat("Cancelled"))
        w.finished.connect(self._on_thread_done)
        self._worker = w
        self.progress_review.setRange(0, 0)
        self.progress_review.setFormat(label)
        self.button_open_run.setEnabled(False)
        self.button_predict.setEnabled(False)
        self.busy_changed.emit(True)
        w.start()
        return True

    def load_run(self, run_dir: str, dataset=None) -> bool:
        """Load a run's model and compute predictions on its validation images (in a worker).
        The panel switches to the run (model, label, exports) only once that succeeded."""
        started = self._start(review_task(str(run_dir), dataset), "review", self._on_review,
                              "Predicting validation images…")
        if started:
            self._loading_run = str(run_dir)
        return started

    def choose_run(self) -> None:
        from segstudio.runs import default_runs_dir

        path = QFileDialog.getExistingDirectory(self, "Open a run folder", str(default_runs_dir()))
        if path:
            self.load_run(path)

    def export_masks(self, images_dir: str | None = None, out_dir: str | None = None) -> bool:
        """Predict a folder of images with the current run's model, writing PNG masks."""
        if not self.run_dir:
            self.message.emit("warning", "Open or train a run first.")
            return False
        images_dir = images_dir or QFileDialog.getExistingDirectory(self, "Images to predict")
        if not images_dir:
            return False
        out_dir = out_dir or QFileDialog.getExistingDirectory(self, "Write masks to")
        if not out_dir:
            return False
        fn = predict_folder_task(self.run_dir, images_dir, out_dir, self.predictor)
        return self._start(fn, "predict", self._on_predicted, "Predicting folder…")

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    def wait(self, ms: int = 60000) -> bool:
        if self._worker is None:
            return True
        self._worker.stop()
        return self._worker.wait(ms)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, msg: str) -> None:
        self.progress_review.setRange(0, max(total, 0))
        if total > 0:
            self.progress_review.setValue(done)
        self.progress_review.setFormat(msg + (f" — {done}/{total}" if total > 0 else ""))

    @Slot(object)
    def _on_review(self, result) -> None:
        self.predictor, self.dataset, items = result
        self.run_dir = self._loading_run
        self.label_run.setText(f"Run: <b>{Path(self.run_dir).name}</b>")
        self.current = -1
        self.set_items(items, tuple(getattr(self.predictor, "codes", ()) or ()))
        self.progress_review.setRange(0, 1)
        self.progress_review.setValue(1)
        self.progress_review.setFormat(f"{len(items)} validation images")
        self.message.emit("info", f"Review ready: {len(items)} validation images, worst first.")

    @Slot(object)
    def _on_predicted(self, report) -> None:
        self.last_export = report
        written, problems = list(report.written), list(report.problems)
        self.progress_review.setRange(0, 1)
        self.progress_review.setValue(1)
        segs = f" and {len(report.dicom_segs)} DICOM SEG file(s)" if report.dicom_segs else ""
        self.progress_review.setFormat(f"Wrote {len(written)} masks{segs}")
        self.message.emit("info", f"Wrote {len(written)} masks{segs}" +
                          (f"; {len(problems)} problem(s): " + "; ".join(
                              f"{p.path}: {p.reason}" for p in problems[:5]) if problems else "."))

    def _on_failed(self, message: str, details: str) -> None:
        self.progress_review.setRange(0, 1)
        self.progress_review.setValue(0)
        self.progress_review.setFormat("Failed")
        self.message.emit("error", message + (f"\n{details}" if details else ""))

    @Slot()
    def _on_thread_done(self) -> None:
        w, self._worker = self._worker, None
        if w is not None:
            w.deleteLater()
        self.button_open_run.setEnabled(True)
        self.button_predict.setEnabled(bool(self.run_dir))
        self.busy_changed.emit(False)
