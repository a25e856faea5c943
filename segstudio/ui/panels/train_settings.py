"""Training settings form: model, schedule, device, and the discriminative LR range with its chart."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
    QLineEdit, QPushButton, QSpinBox, QTabWidget, QVBoxLayout, QWidget,
)
from superqt import QCollapsible, QDoubleRangeSlider

from segstudio.config import Arch, Device, InputMode, Loss, Norm, Precision, Schedule, TrainConfig, default_lrs
from segstudio.training.groups import group_names, lr_plan
from segstudio.ui import resources
from segstudio.ui.binding import PERCENT, Binding, Convert
from segstudio.ui.panels.plots import LRFinderPlot, LRGroupChart
from segstudio.ui.panels.weights_box import WeightsBox

LOG_MIN, LOG_MAX = -6.0, -1.0
MINUTES = Convert(lambda seconds: float(seconds) / 60, lambda minutes: float(round(float(minutes) * 60)))  # time budget
# keyed by (enum, value): str-valued members of different enums compare equal ("auto")
LABELS = {
    (Schedule, "one_cycle"): "One-cycle, discriminative LRs",
    (Schedule, "fine_tune"): "Fine-tune (frozen encoder first)",
    (Schedule, "poly"): "SGD, poly decay (nnU-Net's)",
    (Loss, "ce"): "Cross-entropy", (Loss, "dice"): "Dice", (Loss, "ce_dice"): "Cross-entropy + Dice",
    (Device, "auto"): "Auto (best available)", (Device, "cuda"): "CUDA GPU",
    (Device, "mps"): "Apple GPU (MPS)", (Device, "cpu"): "CPU",
    (Precision, "auto"): "Auto (mixed on CUDA)", (Precision, "on"): "Mixed precision",
    (Precision, "off"): "Full precision",
    (InputMode, "auto"): "Auto (patches if large)", (InputMode, "resize"): "Whole images, resized",
    (InputMode, "patches"): "Native-resolution patches",
    (Norm, "auto"): "Auto (by encoder)", (Norm, "batch"): "BatchNorm",
    (Norm, "instance"): "Instance norm",
}


def round_lr(lr: float) -> float:
    return float(f"{lr:.2g}")


def enum_combo(name: str, enum) -> QComboBox:
    combo = QComboBox(objectName=name)
    for member in enum:
        combo.addItem(LABELS.get((enum, member.value), member.value), member.value)
    return combo


MAX_FOLDS = 10
RUN_IN = (("This app", 0), ("A separate process", 1), ("torchrun, 2 processes", 2), ("torchrun, 4 processes", 4),
          ("torchrun, 8 processes", 8))  # (label, processes; 0 = a thread of the app)

class TrainSettings(QWidget):
    """Edits a TrainConfig (without its data part); fields are bound to the widgets named after
    them (ui/binding.py), the LR range to the slider. `changed` fires on every edit."""

    changed = Signal()
    notice = Signal(str)  # a message for the user (e.g. a value out of range was clamped)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("train_settings")
        self.weights_available: dict[str, bool] | None = None  # unknown until probed
        self._lr_touched = False
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self._build_model())
        v.addWidget(self._build_lr())
        v.addStretch(1)
        self.bool_pretrained.toggled.connect(self._on_defaults_changed)  # LRs first, then one `changed`
        self.combo_schedule.currentIndexChanged.connect(self._on_defaults_changed)
        self.binding = Binding(self, TrainConfig, {"empty_share": PERCENT, "time_budget": MINUTES},
                               exclude=("lr_lo", "lr_hi"))
        self.binding.on_change(self._on_edit)
        self.set_config(TrainConfig())

    # -- layout ------------------------------------------------------------------------------
    def _build_model(self) -> QGroupBox:
        box = QGroupBox("Model and schedule")
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.combo_arch = enum_combo("combo_arch", Arch)
        self.bool_pretrained = QCheckBox("ImageNet-pretrained encoder", objectName="bool_pretrained")
        self.label_pretrained_note = QLabel("", objectName="label_pretrained_note", wordWrap=True)
        self.label_pretrained_note.setVisible(False)
        self.weights_box = WeightsBox()
        self.weights_box.downloaded.connect(self._on_weights_downloaded)
        self.weights_box.failed.connect(self.notice)
        self.value_size = QSpinBox(objectName="value_size", minimum=32, maximum=1024, singleStep=32,
                                   suffix=" px")
        self.value_bs = QSpinBox(objectName="value_bs", minimum=0, maximum=256, specialValueText="Auto")
        self.value_bs.setToolTip("Images per training step. Auto: 2 to 8 by the dataset's size (a batch covers at "
                                 "most 5% of the training pixels, nnU-Net's rule): small datasets learn more from "
                                 "many small steps.")
        self.value_epochs = QSpinBox(objectName="value_epochs", minimum=1, maximum=1000)
        self.combo_schedule = enum_combo("combo_schedule", Schedule)
        self.value_freeze_epochs = QSpinBox(objectName="value_freeze_epochs", minimum=0, maximum=100)
        self.combo_loss = enum_combo("combo_loss", Loss)
        self.bool_augment = QCheckBox("Flips, rotations, zoom", objectName="bool_augment")
        self.value_empty_share = QDoubleSpinBox(objectName="value_empty_share", decimals=0, minimum=0,
                                                maximum=100, singleStep=5, suffix=" %")
        self.value_empty_share.setToolTip("Share of the training slices without any foreground used "
                                          "each epoch (drawn anew every epoch); scans are mostly background")
        self.combo_device = enum_combo("combo_device", Device)
        self.path_weights_path = QLineEdit(objectName="path_weights_path",
                                           placeholderText="ImageNet weights from the torch cache")
        self.path_weights_path.setToolTip("A torchvision state dict for the encoder (e.g. "
                                          "resnet18-f37072fd.pth), used instead of the cached weights")
        form.addRow("Architecture", self.combo_arch)
        form.addRow("", self.bool_pretrained)
        form.addRow("", self.weights_box)
        form.addRow("Weights file", self._with_browse(self.path_weights_path, self.browse_weights))
        form.addRow("", self.label_pretrained_note)
        size_row = QHBoxLayout()
        size_row.addWidget(self.value_size, 1)
        size_row.addWidget(QLabel("Batch"))
        size_row.addWidget(self.value_bs, 1)
        form.addRow("Image size", size_row)
        self.combo_input_mode = enum_combo("combo_input_mode", InputMode)
        self.combo_input_mode.setToolTip(
            "Whole images: each image resized to the image size (fine when images are about that size). Patches: "
            "random crops of the image size at native resolution (times the scale), predicted by sliding window at "
            "full resolution: for large images, small structures and non-square images. Auto picks patches when "
            "the images' longer side is at least three times the image size.")
        self.value_scale = QDoubleSpinBox(objectName="value_scale", decimals=2, minimum=0.05, maximum=1.0,
                                          singleStep=0.05)
        self.value_scale.setToolTip("Patches: images are scaled by this factor first (0.5: half resolution)")
        form.addRow("Input", self.combo_input_mode)
        form.addRow("Patch scale", self.value_scale)
        self.combo_input_mode.currentIndexChanged.connect(  # the scale applies to patches only
            lambda: self.value_scale.setEnabled(self.combo_input_mode.currentData() != "resize"))
        ep_row = QHBoxLayout()
        ep_row.addWidget(self.value_epochs, 1)
        self.label_freeze = QLabel("Frozen")
        ep_row.addWidget(self.label_freeze)
        ep_row.addWidget(self.value_freeze_epochs, 1)
        form.addRow("Epochs", ep_row)
        self.value_time_budget = QDoubleSpinBox(objectName="value_time_budget", decimals=1, minimum=0,
                                                maximum=7 * 24 * 60, singleStep=1, suffix=" min")
        self.value_time_budget.setSpecialValueText("Off (train the epochs)")
        self.value_time_budget.setToolTip(
            "Train for about this long in all, loading included, instead of a number of epochs: the epochs that "
            "fit are measured on the first training steps and the learning-rate schedule is sized to them "
            "(the run's config.json records them). Off: train the epochs above.")
        form.addRow("Time", self.value_time_budget)
        self.choice_folds = QSpinBox(objectName="choice_folds", minimum=1, maximum=MAX_FOLDS, suffix=" folds")
        self.choice_folds.setSpecialValueText("1 (one split)")  # how to train, not a run setting: not in config()
        self.choice_folds.setToolTip(
            "1: one run, validated on a share of the cases. 2 to 10: cross-validation, one run per fold in a fold-set "
            "folder, each validated on its own 1/K of the cases (a patient's images in one fold) and trained on "
            "the rest: K times the training time. The Review then scores every labelled case with the fold that "
            "did not train on it, and predicting a folder averages the folds' probabilities.")
        form.addRow("Folds", self.choice_folds)
        form.addRow("Schedule", self.combo_schedule)
        form.addRow("Loss", self.combo_loss)
        form.addRow("Augment", self.bool_augment)
        form.addRow("Empty slices", self.value_empty_share)
        form.addRow("Device", self.combo_device)

        self.advanced = QCollapsible("Advanced")
        self.advanced.setObjectName("collapsible_advanced")
        adv = QWidget()
        af = QFormLayout(adv)
        af.setContentsMargins(0, 0, 0, 0)
        self.combo_precision = enum_combo("combo_precision", Precision)
        self.value_seed = QSpinBox(objectName="value_seed", minimum=0, maximum=2**31 - 1)
        self.value_preview_count = QSpinBox(objectName="value_preview_count", minimum=0, maximum=8)
        self.text_run_name = QLineEdit(objectName="text_run_name",
                                       placeholderText="optional, added to the run folder's name")
        self.path_out_dir = QLineEdit(objectName="path_out_dir", placeholderText="default runs folder")
        self.combo_norm = enum_combo("combo_norm", Norm)
        self.combo_norm.setToolTip("BatchNorm: fastai's, what pretrained encoders were trained with. Instance norm: "
                                   "nnU-Net's, each image normalised on its own, whatever the batch size. Auto: "
                                   "BatchNorm with ImageNet weights, instance norm from a random encoder.")
        self.bool_deep_supervision = QCheckBox("Also at 1/2, 1/4, 1/8 size",
                                               objectName="bool_deep_supervision")
        self.bool_deep_supervision.setToolTip("Deep supervision (nnU-Net's): the decoder's lower-resolution "
                                              "outputs are trained too; the saved model is the same U-Net.")
        af.addRow("Precision", self.combo_precision)
        af.addRow("Normalisation", self.combo_norm)
        af.addRow("Deep supervision", self.bool_deep_supervision)
        af.addRow("Seed", self.value_seed)
        af.addRow("Preview tiles", self.value_preview_count)
        af.addRow("Run name", self.text_run_name)
        af.addRow("Runs folder", self._with_browse(self.path_out_dir, self.browse_runs_folder))
        self.bool_keep_checkpoint = QCheckBox("Keep when the run finishes", objectName="bool_keep_checkpoint")
        self.bool_keep_checkpoint.setToolTip(
            "checkpoint.pth (the model with its optimizer, about 3 times its size) is needed only to resume a "
            "stopped run; a finished run's is removed unless this is on (Continue training needs only the model).")
        af.addRow("Checkpoint", self.bool_keep_checkpoint)
        self.choice_processes = QComboBox(objectName="choice_processes")  # how to run, not a run setting
        for text, n in RUN_IN:
            self.choice_processes.addItem(text, n)
        self.choice_processes.setToolTip(
            "This app: a thread of the app. A separate process: a crash of the run (a driver fault, running out "
            "of memory) cannot take the app with it. torchrun: data-parallel training on several GPUs of this "
            "machine (or CPU processes), the batch split between them.")
        af.addRow("Run in", self.choice_processes)
        self.advanced.addWidget(adv)
        form.addRow(self.advanced)
        return box

    def _with_browse(self, edit: QLineEdit, slot) -> QWidget:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        button = QPushButton(resources.icon("folder"), "", objectName=f"button_browse_{edit.objectName()}")
        button.clicked.connect(slot)
        h.addWidget(edit, 1)
        h.addWidget(button)
        return row

    def _build_lr(self) -> QGroupBox:
        box = QGroupBox("Learning rates (discriminative)")
        grid = QGridLayout(box)
        self.slider_lr = QDoubleRangeSlider(Qt.Orientation.Horizontal, objectName="slider_lr")
        self.slider_lr.setRange(LOG_MIN, LOG_MAX)
        self.slider_lr.setSingleStep(0.05)
        self.slider_lr.setToolTip("Slide the log10 of the learning rate: left handle = early encoder "
                                  "layers, right handle = decoder")
        self.value_lr_lo = QLineEdit(objectName="value_lr_lo", maximumWidth=80)
        self.value_lr_hi = QLineEdit(objectName="value_lr_hi", maximumWidth=80)
        for edit in (self.value_lr_lo, self.value_lr_hi):
            edit.setAlignment(Qt.AlignmentFlag.AlignCenter)
            edit.editingFinished.connect(self._on_lr_edit)
        scale = QHBoxLayout()
        for e in range(int(LOG_MIN), int(LOG_MAX) + 1):
            lab = QLabel(f"1e{e}")
            lab.setStyleSheet("color:#718096;font-size:8pt;")
            scale.addWidget(lab)
            if e < LOG_MAX:
                scale.addStretch(1)
        self.button_lr_defaults = QPushButton("Defaults", objectName="button_lr_defaults")
        self.button_lr_defaults.setToolTip("Reset to the recommended range for this encoder")
        self.button_lr_defaults.clicked.connect(self.reset_lrs)
        grid.addWidget(QLabel("Encoder start"), 0, 0)
        grid.addWidget(self.value_lr_lo, 1, 0)
        grid.addWidget(self.slider_lr, 0, 1)
        grid.addLayout(scale, 1, 1)
        grid.addWidget(QLabel("Decoder"), 0, 2)
        grid.addWidget(self.value_lr_hi, 1, 2)
        self.chart_lr = LRGroupChart()
        self.lr_finder = LRFinderPlot()
        self.tabs_lr = QTabWidget(objectName="tabs_lr")
        self.tabs_lr.addTab(self.chart_lr, "Per group")
        self.tabs_lr.addTab(self.lr_finder, "LR finder")
        self.tabs_lr.setMinimumHeight(190)
        grid.addWidget(self.tabs_lr, 2, 0, 1, 3)
        buttons = QHBoxLayout()
        self.button_find_lr = QPushButton(resources.icon("find_lr"), "Find LR", objectName="button_find_lr")
        self.button_find_lr.setToolTip("Train briefly with a rising LR and plot the loss")
        self.button_apply_lr = QPushButton("Apply suggested", objectName="button_apply_lr",
                                           enabled=False)
        self.button_apply_lr.setToolTip("Set the range the LR finder suggests")
        buttons.addWidget(self.button_find_lr)
        buttons.addWidget(self.button_apply_lr)
        buttons.addStretch(1)
        buttons.addWidget(self.button_lr_defaults)
        grid.addLayout(buttons, 3, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        self.slider_lr.valueChanged.connect(self._on_slider)
        return box

    # -- config <-> widgets ------------------------------------------------------------------
    def processes(self) -> int:
        """0: train in a thread of the app; 1: in a child process; N: under torchrun with N processes."""
        return int(self.choice_processes.currentData())

    def folds(self) -> int:
        """1: train one run; K >= 2: a fold set of K folds."""
        return int(self.choice_folds.value())

    def config(self) -> TrainConfig:
        lo, hi = self.lrs()
        return replace(self.binding.read(TrainConfig()), lr_lo=lo, lr_hi=hi)

    def set_config(self, c: TrainConfig) -> None:
        self.binding.write(c)  # one update (and one `changed`) at the end, not one per field
        lo, hi = c.lrs(self.effective_pretrained())
        self._lr_touched = c.lr_lo is not None or c.lr_hi is not None
        self.set_lrs(lo, hi, touched=self._lr_touched)
        self._update_pretrained_note()
        self._on_edit()

    def snapshot(self) -> TrainConfig:
        """The settings as set, an LR range the user did not choose left to the defaults:
        `set_config` of it restores them as they were."""
        c = self.config()
        return c if self._lr_touched else replace(c, lr_lo=None, lr_hi=None)

    def update(self, **values) -> None:
        """Change some settings (TrainConfig field names), keeping the others and the LR state."""
        self.set_config(replace(self.snapshot(), **values))

    @Slot()
    def browse_weights(self) -> None:
        start = self.path_weights_path.text() or str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Encoder weights (torchvision state dict)", start,
                                              "PyTorch weights (*.pth *.pt);;All files (*)")
        if path:
            self.path_weights_path.setText(path)
            self.bool_pretrained.setChecked(True)
            self._on_edit()

    @Slot()
    def browse_runs_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Runs folder", self.path_out_dir.text() or str(Path.home()))
        if path:
            self.path_out_dir.setText(path)
            self._on_edit()

    def lrs(self) -> tuple[float, float]:
        lo, hi = self.slider_lr.value()
        return round_lr(10 ** lo), round_lr(10 ** hi)

    def set_lrs(self, lo: float, hi: float, touched: bool = True) -> None:
        lo, hi = sorted((float(lo), float(hi)))
        clamp = lambda x: min(max(math.log10(max(x, 1e-12)), LOG_MIN), LOG_MAX)  # noqa: E731
        self.slider_lr.setValue((clamp(lo), clamp(hi)))
        self._lr_touched = touched
        self._sync_lr_views()

    @Slot()
    def reset_lrs(self) -> None:
        self.set_lrs(*self.default_lrs(), touched=False)
        self.changed.emit()

    def default_lrs(self) -> tuple[float, float]:
        """The range a run gets by default for the encoder and schedule as set."""
        return default_lrs(self.effective_pretrained(), Schedule(self.combo_schedule.currentData()))

    def effective_pretrained(self) -> bool:
        """Pretrained is asked for and (as far as we know) the weights are available offline."""
        if not self.bool_pretrained.isChecked():
            return False
        if self.weights_available is None or self.path_weights_path.text().strip():
            return True
        return self.weights_available.get(self.combo_arch.currentData(), False)

    def set_weights_available(self, available: dict[str, bool]) -> None:
        self.weights_available = dict(available)
        self._update_pretrained_note()
        if not self._lr_touched:
            self.set_lrs(*self.default_lrs(), touched=False)

    @Slot(str)
    def _on_weights_downloaded(self, arch: str) -> None:
        self.set_weights_available({**(self.weights_available or {}), arch: True})

    # -- slots -------------------------------------------------------------------------------
    def _sync_lr_views(self) -> None:
        lo, hi = self.lrs()
        self.value_lr_lo.setText(f"{lo:.1e}")
        self.value_lr_hi.setText(f"{hi:.1e}")
        arch = self.combo_arch.currentData()
        names = group_names(arch)
        self.chart_lr.set_plan(names, lr_plan(lo, hi, len(names)))

    @Slot()
    def _on_slider(self, _value=None) -> None:
        self._lr_touched = True
        self._sync_lr_views()
        self.changed.emit()

    @Slot()
    def _on_lr_edit(self) -> None:
        try:
            lo, hi = float(self.value_lr_lo.text()), float(self.value_lr_hi.text())
        except ValueError:
            self._sync_lr_views()
            return
        if lo <= 0 or hi <= 0:
            self._sync_lr_views()
            return
        low, high = 10 ** LOG_MIN, 10 ** LOG_MAX
        if not (low <= lo <= high and low <= hi <= high):
            self.notice.emit(f"Learning rates range from {low:.0e} to {high:.0e}: "
                             f"{lo:g} … {hi:g} was set to the nearest values.")
        self.set_lrs(lo, hi)
        self.changed.emit()

    @Slot()
    def _on_defaults_changed(self, *_args) -> None:
        """The encoder or the schedule changed: LRs the user did not choose follow the defaults."""
        defaults = [default_lrs(p, s) for p in (True, False) for s in Schedule]
        if not self._lr_touched or self.lrs() in defaults:
            self.set_lrs(*self.default_lrs(), touched=False)

    def _update_pretrained_note(self) -> None:
        arch = self.combo_arch.currentData()
        missing = (self.bool_pretrained.isChecked() and self.weights_available is not None
                   and not self.weights_available.get(arch, False)
                   and not self.path_weights_path.text().strip())
        self.label_pretrained_note.setText(
            f"⚠ ImageNet weights for {arch} are not in the local cache; training starts from "
            "random weights. Download them, or choose a weights file to use your own." if missing else "")
        self.label_pretrained_note.setVisible(missing)
        known = self.weights_available
        self.weights_box.set_state(arch, None if known is None else known.get(arch, False))

    @Slot()
    def _on_edit(self, *_args) -> None:
        self._update_pretrained_note()
        fine = self.combo_schedule.currentData() == Schedule.fine_tune.value
        self.value_freeze_epochs.setEnabled(fine)
        self.label_freeze.setEnabled(fine)
        self.value_epochs.setEnabled(self.value_time_budget.value() == 0)  # a time budget chooses them
        self._sync_lr_views()
        self.changed.emit()
