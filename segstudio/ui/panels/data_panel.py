"""Data area: image/mask folder pickers, off-thread loading, the dataset report and thumbnails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QListView, QListWidget, QListWidgetItem, QPlainTextEdit, QProgressBar, QPushButton, QSplitter,
    QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget, QHeaderView, QAbstractItemView, QSizePolicy,
)

from segstudio.config import DataConfig
from segstudio.ui import overlay, resources
from segstudio.ui.panels.folders import classify_folders
from segstudio.workers import TaskWorker, load_dataset_task

THUMB = 96
MAX_THUMBS = 240


class DataPanel(QWidget):
    """Pick folders, load them off the GUI thread (cancellable), show the report and thumbnails."""

    dataset_loaded = Signal(object, object)  # SegDataset, DatasetReport
    dataset_cleared = Signal()
    busy_changed = Signal(bool)
    folders_changed = Signal(str, str)  # images, masks
    message = Signal(str, str)  # level ("info"/"warning"/"error"), text

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("panel_data")
        self.dataset = None
        self.report = None
        self.loaded_key = None  # (DataConfig, size) the current dataset was loaded with
        self._pending_key = None
        self.size_provider = lambda: 256
        self._worker: TaskWorker | None = None
        self._build()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self._build_folders())
        lv.addWidget(self._build_report(), 1)

        self.list_thumbnails = QListWidget(objectName="list_thumbnails")
        self.list_thumbnails.setViewMode(QListView.ViewMode.IconMode)
        self.list_thumbnails.setIconSize(QSize(THUMB, THUMB))
        self.list_thumbnails.setGridSize(QSize(THUMB + 30, THUMB + 30))
        self.list_thumbnails.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.list_thumbnails.setResizeMode(QListView.ResizeMode.Adjust)
        self.list_thumbnails.setMovement(QListView.Movement.Static)
        self.list_thumbnails.setUniformItemSizes(True)
        self.list_thumbnails.setWordWrap(False)
        right = QGroupBox("Images with their masks")
        rv = QVBoxLayout(right)
        rv.addWidget(self.list_thumbnails)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 600])
        QVBoxLayout(self).addWidget(split)

    def _folder_row(self, name: str, placeholder: str) -> tuple[QWidget, QLineEdit]:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        edit = QLineEdit(objectName=f"path_{name}", placeholderText=placeholder)
        button = QPushButton(resources.icon("folder"), "", objectName=f"button_browse_{name}")
        button.setToolTip(f"Choose the {name} folder")
        button.clicked.connect(lambda: self._browse(name))
        h.addWidget(edit, 1)
        h.addWidget(button)
        return row, edit

    def _build_folders(self) -> QGroupBox:
        box = QGroupBox("Folders")
        form = QFormLayout(box)
        row_i, self.path_images = self._folder_row("images", "Folder of images (PNG, TIFF, DICOM…)")
        row_m, self.path_masks = self._folder_row("masks", "Folder of masks (same names)")
        form.addRow("Images", row_i)
        form.addRow("Masks", row_m)
        self.combo_window = QComboBox(objectName="combo_window")
        self.combo_window.setToolTip("DICOM window used to turn CT/MR values into grey levels")
        for name in window_choices():
            self.combo_window.addItem(name)
        self.combo_window.currentTextChanged.connect(self._window_changed)
        form.addRow("DICOM window", self.combo_window)
        self.value_valid_pct = QDoubleSpinBox(objectName="value_valid_pct", decimals=0,
                                              minimum=5, maximum=50, singleStep=5, suffix=" %")
        self.value_valid_pct.setValue(20)
        form.addRow("Validation", self.value_valid_pct)

        buttons = QHBoxLayout()
        self.button_load = QPushButton(resources.icon("load"), "Load", objectName="button_load")
        self.button_load.clicked.connect(self.load)
        self.button_cancel_load = QPushButton(resources.icon("cancel"), "Cancel",
                                              objectName="button_cancel_load", enabled=False)
        self.button_cancel_load.clicked.connect(self.cancel)
        buttons.addWidget(self.button_load)
        buttons.addWidget(self.button_cancel_load)
        buttons.addStretch(1)
        form.addRow(buttons)
        self.progress_load = QProgressBar(objectName="progress_load", textVisible=True)
        self.progress_load.setFormat("Idle")
        self.progress_load.setValue(0)
        form.addRow(self.progress_load)
        hint = QLabel("Tip: drop an image folder and a mask folder — or one folder holding "
                      "images/ and masks/ — anywhere on the window.", objectName="label_drop_hint")
        hint.setWordWrap(True)
        form.addRow(hint)
        return box

    def _build_report(self) -> QGroupBox:
        box = QGroupBox("Dataset report")
        v = QVBoxLayout(box)
        self.label_summary = QLabel("No dataset loaded.", objectName="label_summary")
        self.label_summary.setWordWrap(True)
        self.label_summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        v.addWidget(self.label_summary)
        self.table_classes = QTableWidget(0, 4, objectName="table_classes")
        self.table_classes.setHorizontalHeaderLabels(["", "Class", "Mask value", "Pixels"])
        self.table_classes.verticalHeader().setVisible(False)
        self.table_classes.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table_classes.setColumnWidth(0, 24)
        self.table_classes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table_classes.verticalHeader().setDefaultSectionSize(24)
        self._fit_class_table(3)
        v.addWidget(self.table_classes)
        head = QHBoxLayout()
        self.label_problems = QLabel("Problems", objectName="label_problems")
        self.button_copy_problems = QPushButton(resources.icon("copy"), "Copy",
                                                objectName="button_copy_problems")
        self.button_copy_problems.clicked.connect(self.copy_problems)
        head.addWidget(self.label_problems, 1)
        head.addWidget(self.button_copy_problems)
        v.addLayout(head)
        self.label_summary.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
        self.text_problems = QPlainTextEdit(objectName="text_problems", readOnly=True)
        self.text_problems.setMinimumHeight(48)
        self.text_problems.setPlaceholderText("Files that could not be used are listed here.")
        v.addWidget(self.text_problems, 1)
        return box

    def _fit_class_table(self, rows: int) -> None:
        t = self.table_classes
        header = t.horizontalHeader().sizeHint().height()
        t.setFixedHeight(header + rows * t.verticalHeader().defaultSectionSize() + 2 * t.frameWidth() + 2)

    # -- folders -----------------------------------------------------------------------------
    def _browse(self, which: str) -> None:
        edit = self.path_images if which == "images" else self.path_masks
        start = edit.text() or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, f"Choose the {which} folder", start)
        if path:
            edit.setText(path)
            self.folders_changed.emit(self.path_images.text(), self.path_masks.text())

    def set_folders(self, images: str | None = None, masks: str | None = None,
                    load: bool = False) -> None:
        if images is not None:
            self.path_images.setText(str(images))
        if masks is not None:
            self.path_masks.setText(str(masks))
        self.folders_changed.emit(self.path_images.text(), self.path_masks.text())
        if load and self.path_images.text() and self.path_masks.text():
            self.load()

    def drop_paths(self, paths: list[str]) -> bool:
        """Handle dropped folders/files; returns True when they set at least one folder."""
        images, masks = classify_folders(paths)
        if not images and not masks:
            self.message.emit("warning", "Drop folders of images and masks (no folder recognised).")
            return False
        self.set_folders(images, masks, load=True)
        return True

    def dataset_for(self, data: DataConfig, size: int):
        """The loaded dataset when it was loaded with exactly these settings, else None."""
        if self.dataset is not None and self.loaded_key == (data, int(size)):
            return self.dataset
        return None

    def data_config(self) -> DataConfig:
        return DataConfig(images=self.path_images.text().strip(), masks=self.path_masks.text().strip(),
                          valid_pct=self.value_valid_pct.value() / 100.0,
                          window=self.combo_window.currentText() or "auto")

    def set_data_config(self, data: DataConfig) -> None:
        self.path_images.setText(data.images)
        self.path_masks.setText(data.masks)
        self.value_valid_pct.setValue(round(data.valid_pct * 100))
        if self.combo_window.findText(data.window) < 0:
            self.combo_window.addItem(data.window)
        self.combo_window.setCurrentText(data.window)

    # -- loading -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._worker is not None

    @Slot()
    def load(self) -> None:
        if self._worker is not None:
            return
        cfg = self.data_config()
        if not cfg.images or not cfg.masks:
            self.message.emit("warning", "Choose both an image folder and a mask folder first.")
            return
        size = int(self.size_provider())
        self._pending_key = (cfg, size)
        worker = TaskWorker(load_dataset_task(cfg, size), "load", self)
        worker.progress.connect(self._on_progress)
        worker.result.connect(self._on_loaded)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        worker.finished.connect(self._on_thread_done)
        self._worker = worker
        self._set_busy(True)
        self.progress_load.setRange(0, 0)
        self.progress_load.setFormat("Reading files…")
        worker.start()

    @Slot()
    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self.progress_load.setFormat("Cancelling…")

    def wait(self, ms: int = 30000) -> bool:
        """Stop and wait for the loading thread (used when the window closes)."""
        if self._worker is None:
            return True
        self._worker.stop()
        return self._worker.wait(ms)

    def _set_busy(self, busy: bool) -> None:
        self.button_load.setEnabled(not busy)
        self.button_cancel_load.setEnabled(busy)
        self.busy_changed.emit(busy)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, message: str) -> None:
        if total > 0:
            self.progress_load.setRange(0, total)
            self.progress_load.setValue(done)
            self.progress_load.setFormat(f"{message or 'Loading'} — {done}/{total}")
        else:
            self.progress_load.setRange(0, 0)
            self.progress_load.setFormat(message or "Loading…")

    @Slot(object)
    def _on_loaded(self, result) -> None:
        dataset, report, error = result
        if dataset is None:  # files were read, none usable: show why, file by file
            self._on_failed(error.splitlines()[0], "")
            self._show_report(report, error.splitlines()[0])
            return
        self.dataset, self.report = dataset, report
        self.loaded_key = self._pending_key
        self._show_report(report)
        self._show_thumbnails(dataset)
        self.progress_load.setRange(0, 1)
        self.progress_load.setValue(1)
        self.progress_load.setFormat(f"Loaded {len(dataset.names)} pairs")
        self.dataset_loaded.emit(dataset, report)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.progress_load.setRange(0, 1)
        self.progress_load.setValue(0)
        self.progress_load.setFormat("Loading failed")
        self.clear_dataset()
        self.label_summary.setText(f"<b>Could not load the dataset.</b><br>{message}")
        self.message.emit("error", f"Loading failed: {message}" + (f"\n{details}" if details else ""))

    @Slot()
    def _on_cancelled(self) -> None:
        self.progress_load.setRange(0, 1)
        self.progress_load.setValue(0)
        self.progress_load.setFormat("Cancelled")
        self.message.emit("info", "Loading cancelled.")

    @Slot()
    def _on_thread_done(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.deleteLater()
        self._set_busy(False)

    @Slot(str)
    def _window_changed(self, _name: str) -> None:
        if self.dataset is not None and self._worker is None:
            self.load()

    def clear_dataset(self) -> None:
        """Forget the loaded dataset (after a failed load, nothing stale stays on screen)."""
        self.dataset, self.report, self.loaded_key = None, None, None
        self.list_thumbnails.clear()
        self.table_classes.setRowCount(0)
        self.label_problems.setText("Problems")
        self.text_problems.clear()
        self.dataset_cleared.emit()

    # -- report ------------------------------------------------------------------------------
    def _show_report(self, report, headline: str = "") -> None:
        g = lambda name, default="?": getattr(report, name, default)  # noqa: E731
        lines = [f"<b>{g('n_pairs')}</b> image/mask pairs "
                 f"({g('n_images')} images, {g('n_masks')} masks) — "
                 f"<b>{g('n_train')}</b> train, <b>{g('n_valid')}</b> validation"]
        if g("split", ""):
            lines.append(f"Split: {g('split')}")
        if g("mask_convention", ""):
            lines.append(f"Masks: {g('mask_convention')}")
        for note in list(g("notes", []) or [])[:4]:
            lines.append(f"<i>{note}</i>")
        if headline:
            lines.insert(0, f"<b>Could not load the dataset.</b> {headline}")
        self.label_summary.setText("<br>".join(lines))
        classes = list(g("classes", []) or [])
        self.table_classes.setRowCount(len(classes))
        self._fit_class_table(min(max(len(classes), 1), 6))
        for row, c in enumerate(classes):
            swatch = QTableWidgetItem()
            color = overlay.class_color(int(c.index))
            if c.index > 0:
                from PySide6.QtGui import QColor

                swatch.setBackground(QColor(*color))
            share = float(getattr(c, "pixel_share", float("nan")))
            cells = [swatch, QTableWidgetItem(str(c.name)), QTableWidgetItem(str(c.value)),
                     QTableWidgetItem(f"{100 * share:.2f} %" if np.isfinite(share) else "—")]
            for col, item in enumerate(cells):
                self.table_classes.setItem(row, col, item)
        problems = list(report.problems()) if hasattr(report, "problems") else []
        self.label_problems.setText(f"Problems ({len(problems)})")
        self.text_problems.setPlainText("\n".join(f"{p.path}: {p.reason}" for p in problems))

    @Slot()
    def copy_problems(self) -> None:
        QGuiApplication.clipboard().setText(self.text_problems.toPlainText())

    def _show_thumbnails(self, dataset) -> None:
        self.list_thumbnails.clear()
        n = min(len(dataset.names), MAX_THUMBS)
        valid = set(int(i) for i in np.asarray(dataset.valid_idx).ravel())
        for i in range(n):
            pix = overlay.overlay_pixmap(dataset.images[i], dataset.masks[i], THUMB, 0.45)
            name = str(dataset.names[i])
            item = QListWidgetItem(QIcon(pix), name)
            item.setToolTip(f"{name}\n{'validation' if i in valid else 'training'}")
            item.setData(Qt.ItemDataRole.UserRole, i)
            self.list_thumbnails.addItem(item)
        if len(dataset.names) > n:
            self.list_thumbnails.addItem(QListWidgetItem(f"+{len(dataset.names) - n} more"))


def window_choices() -> list[str]:
    """The window modes ("auto", "file", "percentile") then the DICOM presets."""
    from segstudio.data.windowing import MODES, WINDOW_PRESETS

    return list(MODES) + list(WINDOW_PRESETS)
