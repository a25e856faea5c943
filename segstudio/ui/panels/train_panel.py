"""Train area: settings, Find LR, Start/Stop, progress with ETA, live plots, preview and log."""

from __future__ import annotations

import math
import time

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea,
    QSplitter, QVBoxLayout, QWidget, QMessageBox,
)

from segstudio.training import events as ev
from segstudio.ui import resources
from segstudio.ui.panels.plots import LivePlots, PreviewTiles
from segstudio.ui.panels.train_settings import TrainSettings
from segstudio.workers import TrainWorker


def fmt_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "—"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class TrainPanel(QWidget):
    """Runs TrainingSession.run / find_lr in a TrainWorker and shows what it reports."""

    running_changed = Signal(bool)
    state_changed = Signal(str)  # short text for the status bar
    run_finished = Signal(object)  # Finished or Cancelled (with a run_dir) -> review
    message = Signal(str, str)  # level, text

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("panel_train")
        # set by the main window: () -> (DataConfig, SegDataset | None) for a given size
        self.data_provider = None
        self.session_factory = None  # tests may inject a fake session
        self.worker: TrainWorker | None = None
        self.last_started: ev.Started | None = None
        self.last_lr_found: ev.LRFound | None = None
        self.last_final = None
        self.last_config = None  # the TrainConfig of the latest run
        self._t0 = 0.0
        self._build()

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.settings = TrainSettings()
        # the finder lives beside the LR range, but runs are controlled here
        self.lr_finder = self.settings.lr_finder
        self.button_find_lr = self.settings.button_find_lr
        self.button_apply_lr = self.settings.button_apply_lr
        self.button_find_lr.clicked.connect(lambda: self.start("find_lr"))
        self.button_apply_lr.clicked.connect(self.apply_suggested_lr)
        self.settings.notice.connect(lambda text: self.message.emit("warning", text))
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        lv.addWidget(self.settings)
        scroll = QScrollArea(widgetResizable=True, frameShape=QScrollArea.Shape.NoFrame)
        scroll.setWidget(left)
        scroll.setMinimumWidth(380)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(4, 0, 0, 0)
        rv.addLayout(self._build_controls())
        self.plots = LivePlots()
        self.preview = PreviewTiles()
        prev_box = QGroupBox("Predictions on validation images")
        QVBoxLayout(prev_box).addWidget(self.preview)
        self.text_log = QPlainTextEdit(objectName="text_log", readOnly=True)
        self.text_log.setMaximumBlockCount(5000)
        self.text_log.setPlaceholderText("Warnings and errors from the run appear here.")
        vsplit = QSplitter(Qt.Orientation.Vertical)
        vsplit.addWidget(self.plots)
        vsplit.addWidget(prev_box)
        vsplit.addWidget(self.text_log)
        vsplit.setSizes([380, 190, 90])
        rv.addWidget(vsplit, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([400, 900])
        QVBoxLayout(self).addWidget(split)

    def _build_controls(self) -> QHBoxLayout:
        h = QHBoxLayout()
        self.button_train = QPushButton(resources.icon("play"), "Train", objectName="button_train")
        self.button_stop = QPushButton(resources.icon("stop"), "Stop", objectName="button_stop",
                                       enabled=False)
        self.button_train.clicked.connect(lambda: self.start("train"))
        self.button_stop.clicked.connect(self.stop)
        self.progress_train = QProgressBar(objectName="progress_train", textVisible=True)
        self.progress_train.setFormat("Ready")
        self.progress_train.setValue(0)
        self.label_eta = QLabel("", objectName="label_eta")
        h.addWidget(self.button_train)
        h.addWidget(self.button_stop)
        h.addWidget(self.progress_train, 1)
        h.addWidget(self.label_eta)
        return h

    # -- run control -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, mode: str = "train") -> bool:
        if self.worker is not None:
            return False
        data, dataset = self.data_provider(self.settings.value_size.value()) if self.data_provider \
            else (None, None)
        config = self.settings.config(data)
        if not config.data.images or not config.data.masks:
            self.message.emit("warning", "Choose an image folder and a mask folder first (Data tab).")
            return False
        worker = TrainWorker(config, dataset, mode, session_factory=self.session_factory, parent=self)
        worker.progress.connect(self._on_progress)
        worker.run_started.connect(self._on_started)
        worker.phase_changed.connect(self._on_phase)
        worker.batches.connect(self._on_batches)
        worker.epoch_ended.connect(self._on_epoch)
        worker.preview.connect(self.preview.show_preview)
        worker.warning.connect(lambda m: self.log("warning", m))
        worker.run_ended.connect(self._on_ended)
        worker.finished.connect(self._on_thread_done)
        self.worker = worker
        self.last_final = None
        self.last_config = config
        if mode == "train":
            self.plots.reset()
            self.preview.clear()
        self.log("info", f"{'Training' if mode == 'train' else 'LR finder'} started "
                         f"({config.arch.value}, {config.size}px, batch {config.bs}).")
        self._set_running(True, mode)
        self.progress_train.setRange(0, 0)
        self.progress_train.setFormat("Preparing…")
        worker.start()
        return True

    @Slot()
    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.button_stop.setEnabled(False)
            self.progress_train.setFormat("Stopping after this batch…")
            self.state_changed.emit("Stopping…")

    def wait(self, ms: int = 120000) -> bool:
        if self.worker is None:
            return True
        return self.worker.wait(ms)

    def _set_running(self, running: bool, mode: str = "train") -> None:
        for child in self.settings.findChildren(QGroupBox):
            child.setEnabled(not running)
        self.button_train.setEnabled(not running)
        self.button_find_lr.setEnabled(not running)
        self.button_apply_lr.setEnabled(not running and self.last_lr_found is not None)
        self.button_stop.setEnabled(running)
        self.running_changed.emit(running)
        self.state_changed.emit(("Training" if mode == "train" else "Finding LR") if running else "Idle")

    def log(self, level: str, text: str) -> None:
        prefix = {"warning": "⚠ ", "error": "✖ "}.get(level, "")
        self.text_log.appendPlainText(f"[{time.strftime('%H:%M:%S')}] {prefix}{text}")

    # -- worker signals ----------------------------------------------------------------------
    @Slot(object)
    def _on_progress(self, p: ev.Progress) -> None:
        if p.total > 0:
            self.progress_train.setRange(0, p.total)
            self.progress_train.setValue(p.done)
        self.progress_train.setFormat(f"{p.message or 'Loading data'}" +
                                      (f" — {p.done}/{p.total}" if p.total > 0 else ""))

    @Slot(object)
    def _on_started(self, s: ev.Started) -> None:
        self.last_started = s
        self._t0 = time.monotonic()
        self.plots.reset(s.codes, tuple(g.name for g in s.groups), s.iters_per_epoch)
        self.progress_train.setRange(0, max(1, s.epochs * s.iters_per_epoch))
        self.progress_train.setValue(0)
        self.progress_train.setFormat(f"Epoch 1/{s.epochs}")
        enc = "pretrained" if s.pretrained else "random-init"
        self.log("info", f"Run folder {s.run_dir}: {s.n_train} train / {s.n_valid} validation images, "
                         f"{enc} encoder on {s.device_name}{' (mixed precision)' if s.mixed_precision else ''}, "
                         f"LR {s.lr_lo:.1e}…{s.lr_hi:.1e}.")
        self.state_changed.emit(f"Training on {s.device_name}")

    @Slot(object)
    def _on_phase(self, p: ev.PhaseChanged) -> None:
        self.log("info", f"Phase: {p.name}.")

    @Slot(list)
    def _on_batches(self, batches: list) -> None:
        if not batches:
            return
        self.plots.add_batches(batches)
        b = batches[-1]
        s = self.last_started
        ipe = s.iters_per_epoch if s else 0
        total = b.total_iterations or (ipe * (s.epochs if s else 1))
        done = b.iteration + 1
        self.progress_train.setRange(0, max(1, total))
        self.progress_train.setValue(done)
        epochs = s.epochs if s else 0
        batch = (b.iteration % ipe) + 1 if ipe else done
        elapsed = time.monotonic() - self._t0
        eta = elapsed / done * (total - done) if done else float("nan")
        self.progress_train.setFormat(f"Epoch {b.epoch + 1}/{epochs} · batch {batch}/{ipe or '?'}")
        self.label_eta.setText(f"ETA {fmt_duration(eta)}")

    @Slot(object)
    def _on_epoch(self, e: ev.EpochEnd) -> None:
        self.plots.add_epoch(e)
        best = " ★ best" if e.is_best else ""
        self.log("info", f"Epoch {e.epoch + 1}/{e.epochs}: train {e.train_loss:.4f}, valid "
                         f"{e.valid_loss:.4f}, Dice {e.dice_mean:.3f} ({e.seconds:.1f} s){best}")

    @Slot(object)
    def _on_ended(self, final) -> None:
        self.last_final = final
        self.plots.flush()
        self.label_eta.setText("")
        self.progress_train.setRange(0, 1)
        if isinstance(final, ev.LRFound):
            self.last_lr_found = final
            self.lr_finder.show_result(final.lrs, final.losses, final.suggested_lo, final.suggested_hi)
            self.settings.tabs_lr.setCurrentWidget(self.lr_finder)
            self.progress_train.setValue(1)
            self.progress_train.setFormat("LR finder done")
            self.log("info", f"LR finder suggests {final.suggested_lo:.1e} … {final.suggested_hi:.1e}.")
        elif isinstance(final, ev.Finished):
            self.progress_train.setValue(1)
            self.progress_train.setFormat(f"Finished — best Dice {final.best_dice:.3f}")
            self.log("info", f"Finished {final.epochs_done} epochs; best Dice {final.best_dice:.3f} "
                             f"(epoch {final.best_epoch + 1}). Model in {final.run_dir}")
            self.run_finished.emit(final)
        elif isinstance(final, ev.Cancelled):
            self.progress_train.setValue(0)
            self.progress_train.setFormat("Stopped")
            dice = "" if math.isnan(final.best_dice) else f"; best Dice {final.best_dice:.3f}"
            if self.worker is not None and self.worker.mode == "find_lr":
                self.log("warning", "LR finder stopped.")
            else:
                self.log("warning", f"Stopped after {final.epochs_done} epoch(s){dice}.")
            if final.run_dir and final.epochs_done > 0:
                self.run_finished.emit(final)
        elif isinstance(final, ev.Failed):
            self.progress_train.setValue(0)
            self.progress_train.setFormat("Failed")
            self.log("error", final.message + (f"\n{final.advice}" if final.advice else ""))
            self.show_error("Training failed", final.message, final.advice)

    @Slot()
    def _on_thread_done(self) -> None:
        worker, self.worker = self.worker, None
        mode = worker.mode if worker else "train"
        if worker is not None:
            worker.deleteLater()
        self._set_running(False, mode)

    def show_error(self, title: str, text: str, details: str = "") -> QMessageBox:
        """A non-blocking error dialog (window-modal), so nothing waits on it."""
        box = QMessageBox(QMessageBox.Icon.Critical, title, text, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("dialog_error")
        if details:
            box.setInformativeText(details[:2000])
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    @Slot()
    def apply_suggested_lr(self) -> None:
        f = self.last_lr_found
        if f is not None:
            self.settings.set_lrs(f.suggested_lo, f.suggested_hi)
            self.settings.changed.emit()
            lo, hi = self.settings.lrs()
            clamped = " (clamped to the slider's 1e-6…1e-1)" if (lo, hi) != (
                float(f"{f.suggested_lo:.2g}"), float(f"{f.suggested_hi:.2g}")) else ""
            self.log("info", f"Applied LR range {lo:.1e} … {hi:.1e}{clamped}.")
