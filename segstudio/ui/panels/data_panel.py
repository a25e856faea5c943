"""Data area: image/mask folders and how they are read, loading off the GUI thread, the report."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QProgressBar, QPushButton, QScrollArea, QSpinBox, QSplitter, QVBoxLayout, QWidget,
)

from segstudio.config import DataConfig
from segstudio.ui import resources
from segstudio.ui.binding import COMMA_LIST, PERCENT, Binding
from segstudio.ui.message_bar import MessageBar
from segstudio.ui.panels.dataset_view import ReportView
from segstudio.ui.panels.gallery import Thumbnails
from segstudio.ui.panels.folders import classify_folders
from segstudio.ui.state import AppState
from segstudio.ui.tasks import TaskRunner, show_state
from segstudio.workers import load_dataset_task

LABEL_CHOICES = (("auto", "Auto (detects instance labels)"), ("classes", "Each value is a class"),
                 ("instances", "Instances: any value is foreground"))
RELOAD_ON = ("window", "labels", "class_names", "axis", "context")  # settings that change what a load gives


class DataPanel(QWidget):
    """Pick folders, load them off the GUI thread (cancellable), show the report and thumbnails.

    Writes `state.data_config` (as edited) and the loaded dataset; reads the training size."""

    dataset_loaded = Signal(object, object)  # SegDataset, DatasetReport

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.setObjectName("panel_data")
        self.state = state
        self._attempt: DataConfig | None = None  # the settings of the last load, done or failed
        self._build()
        self.binding = Binding(self, DataConfig, {"valid_pct": PERCENT, "class_names": COMMA_LIST})
        self.binding.write(state.data_config)
        self.binding.on_change(self._on_edit)
        self.runner = TaskRunner(self, "load", self.progress_load,
                                 on_error=lambda m, d: self._on_failed(m, d))
        self.runner.busy_changed.connect(self._on_busy)
        state.watch("training", lambda mode: self.setEnabled(not mode))

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.report_view = ReportView()
        self.thumbnails = Thumbnails()
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        lv.addWidget(self._build_folders())
        lv.addWidget(self.report_view, 1)
        scroll = QScrollArea(widgetResizable=True, frameShape=QScrollArea.Shape.NoFrame)
        scroll.setWidget(left)  # a long report scrolls; it never makes the window taller
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # as wide as the form needs (it cannot scroll sideways), with room for the scroll bar
        scroll.setMinimumWidth(left.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(self.thumbnails)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([420, 600])
        v = QVBoxLayout(self)
        v.addWidget(MessageBar("data", self.state))
        v.addWidget(split, 1)

    def _folder_row(self, name: str, placeholder: str) -> tuple[QWidget, QLineEdit]:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        edit = QLineEdit(objectName=f"path_{name}", placeholderText=placeholder)
        button = QPushButton(resources.icon("folder"), "", objectName=f"button_browse_{name}")
        button.setToolTip(f"Choose the {name} folder")
        button.clicked.connect(lambda: self.browse(name))
        h.addWidget(edit, 1)
        h.addWidget(button)
        return row, edit

    def _build_folders(self) -> QGroupBox:
        box = QGroupBox("Folders")
        form = QFormLayout(box)
        row_i, self.path_images = self._folder_row("images", "Folder of images (PNG, TIFF, DICOM…)")
        row_m, self.path_masks = self._folder_row("masks", "Masks (same names); empty for a dataset root")
        form.addRow("Images", row_i)
        form.addRow("Masks", row_m)
        self.combo_window = QComboBox(objectName="combo_window")
        self.combo_window.setToolTip("How CT/MR values become grey levels. Auto: CT gets one HU window "
                                     "for the whole dataset, other images their own window.\nPresets "
                                     "are HU windows and apply to CT only.")
        self.combo_window.addItems(window_choices())
        form.addRow("DICOM window", self.combo_window)
        self.combo_labels = QComboBox(objectName="combo_labels")
        for value, text in LABEL_CHOICES:
            self.combo_labels.addItem(text, value)
        self.combo_labels.setToolTip("Instance labels (each object its own value, as cell tools write "
                                     "them) are trained as foreground vs background")
        form.addRow("Mask values", self.combo_labels)
        self.text_class_names = QLineEdit(objectName="text_class_names",
                                          placeholderText="e.g. liver, kidney (optional)")
        self.text_class_names.setToolTip("Names of the foreground classes in value order; they name "
                                         "the classes in the plots, the review and DICOM SEG exports")
        form.addRow("Class names", self.text_class_names)
        self.value_valid_pct = QDoubleSpinBox(objectName="value_valid_pct", decimals=0,
                                              minimum=5, maximum=50, singleStep=5, suffix=" %")
        form.addRow("Validation", self.value_valid_pct)
        self.combo_axis = QComboBox(objectName="combo_axis")
        self.combo_axis.addItems(["axial", "coronal", "sagittal"])
        self.combo_axis.setToolTip("3-D scans (NIfTI, NRRD, MHA): the slices the network is trained on")
        self.value_context = QSpinBox(objectName="value_context", minimum=0, maximum=3,
                                      specialValueText="none (2-D)", suffix=" each side")
        self.value_context.setToolTip("3-D scans: neighbouring slices given with each slice as input "
                                      "channels (2.5-D); 1 makes three channels, as an ImageNet encoder has")
        scans = QHBoxLayout()
        scans.addWidget(self.combo_axis, 1)
        scans.addWidget(QLabel("Neighbours"))
        scans.addWidget(self.value_context, 1)
        form.addRow("Scan slices", scans)
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
        show_state(self.progress_load, "Idle")
        form.addRow(self.progress_load)
        hint = QLabel("Tip: drop an image folder and a mask folder — or one folder holding "
                      "images/ and masks/ — anywhere on the window.", objectName="label_drop_hint")
        hint.setWordWrap(True)
        form.addRow(hint)
        return box

    # -- what the rest of the app reads ------------------------------------------------------
    @property
    def dataset(self):
        return self.state.dataset

    @property
    def report(self):
        return self.state.report

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def data_config(self) -> DataConfig:
        return self.state.data_config

    # -- folders -----------------------------------------------------------------------------
    def browse(self, which: str) -> None:
        """Ask for the images or masks folder."""
        edit = self.path_images if which == "images" else self.path_masks
        start = edit.text() or str(Path.home())
        path = QFileDialog.getExistingDirectory(self, f"Choose the {which} folder", start)
        if path:
            edit.setText(path)
            self._on_edit()

    def set_folders(self, images: str | None = None, masks: str | None = None, load: bool = False) -> None:
        if images is not None:
            self.path_images.setText(str(images))
        if masks is not None:
            self.path_masks.setText(str(masks))
        self._on_edit()
        if load and self.state.data_config.images:
            self.load()

    def set_data_config(self, data: DataConfig) -> None:
        self.binding.write(data)
        self.state.data_config = self.binding.read(data)

    def drop_paths(self, paths: list[str]) -> bool:
        """Handle dropped folders/files; returns True when they set at least one folder."""
        images, masks = classify_folders(paths)
        if not images and not masks:
            self.state.post("data", "warning", "Drop folders of images and masks (no folder recognised).")
            return False
        # a single dataset root (a Decathlon or KiTS layout) holds its labels itself
        self.set_folders(images, masks if masks or not images else "", load=True)
        return True

    def _on_edit(self) -> None:
        old = self.state.data_config
        new = self.binding.read(old)
        self.state.data_config = new
        changed = any(getattr(old, k) != getattr(new, k) for k in RELOAD_ON)
        tried = self._attempt is not None and (self._attempt.images, self._attempt.masks) == (new.images, new.masks)
        if changed and tried and not self.runner.busy:  # loaded, or failed: try the new settings
            self.load()

    # -- loading -----------------------------------------------------------------------------
    @Slot()
    def load(self) -> None:
        """Load the folders as the fields show them now (a path typed without Return included)."""
        if self.runner.busy:
            self.state.post("data", "info", "A dataset is being loaded; cancel it first to load another.")
            return
        cfg = self.state.data_config = self.binding.read(self.state.data_config)
        if not cfg.images:
            self.state.post("data", "warning", "Choose an image folder (and its mask folder) first.")
            return
        key = (cfg, int(self.state.train_config.size))
        self._attempt = cfg
        self.runner.start(load_dataset_task, *key, label="Reading files…",
                          on_done=lambda result: self._on_loaded(result, key),
                          on_cancelled=lambda: self.state.post("data", "info", "Loading cancelled."))

    @Slot()
    def cancel(self) -> None:
        self.runner.cancel()

    def wait(self, ms: int = 30000) -> bool:
        """Stop and wait for the loading thread (used when the window closes)."""
        return self.runner.wait(ms)

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        self.button_load.setEnabled(not busy)
        self.button_cancel_load.setEnabled(busy)

    def _on_loaded(self, result, key) -> None:
        dataset, report, error = result
        if dataset is None:  # files were read, none usable: show why, file by file
            first = error.splitlines()[0]
            self._on_failed(first, "")
            self.state.report = report
            self.report_view.show_report(report, first, folders_used(key[0], report))
            return
        self.state.set_dataset(dataset, report, key)
        self.report_view.show_report(report, folders=folders_used(key[0], report))
        self.thumbnails.show_dataset(dataset)
        loaded = (f"Loaded {len(dataset.volumes)} scans ({len(dataset)} slices)" if dataset.volumetric
                  else f"Loaded {len(dataset)} pairs")
        show_state(self.progress_load, loaded, full=True)
        if report.cannot_train:
            self.state.post("data", "warning", f"Cannot train: {report.cannot_train}.")
        else:  # also replaces an earlier failure's banner
            problems = len(report.problems())
            self.state.post("data", "warning" if problems else "info",
                            f"{loaded}" + (f"; {problems} file(s) could not be used (see Problems)" if problems else "."))
        self.dataset_loaded.emit(dataset, report)

    def _on_failed(self, message: str, details: str) -> None:
        show_state(self.progress_load, "Loading failed")
        self.clear_dataset()
        self.report_view.show_failure(message)
        self.state.post("data", "error", f"Loading failed: {message}" + (f"\n{details}" if details else ""))

    def clear_dataset(self) -> None:
        """Forget the loaded dataset (after a failed load, nothing stale stays on screen)."""
        self.state.set_dataset(None, None, None)
        self.thumbnails.clear()
        self.report_view.clear()


def folders_used(cfg: DataConfig, report) -> str:
    """"Images from …, masks from …" when the folders read are not the ones given (one folder
    holding images/ and masks/, masks left empty); "" otherwise."""
    def norm(path: str) -> str:
        return str(Path(path).expanduser().absolute()) if str(path or "").strip() else ""

    given, used = (norm(cfg.images), norm(cfg.masks)), (norm(report.images_dir), norm(report.masks_dir))
    if used == given or not used[1] or used[1] == used[0]:
        return ""
    return f"Images from {used[0]}, masks from {used[1]}"


def window_choices() -> list[str]:
    """The window modes ("auto", "file", "percentile") then the DICOM presets."""
    from segstudio.preprocess.windowing import MODES, WINDOW_PRESETS

    return list(MODES) + list(WINDOW_PRESETS)
