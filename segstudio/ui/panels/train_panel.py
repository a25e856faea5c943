"""Train area: settings, Find LR, Start/Stop, progress with ETA, live plots, preview and log."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QGroupBox, QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QScrollArea,
    QSplitter, QVBoxLayout, QWidget,
)

from segstudio.config import TrainConfig
from segstudio.runs import CHECKPOINT, MODEL_FILE, MODEL_META
from segstudio.training import events as ev
from segstudio.ui import resources
from segstudio.ui.message_bar import MessageBar
from segstudio.ui.panels.plots import LivePlots, PreviewTiles
from segstudio.ui.panels.train_settings import TrainSettings
from segstudio.ui.state import AppState, Message, RunRef
from segstudio.ui.tasks import TaskRunner, fmt_duration, show_state
from segstudio.workers import TrainWorker

LOG_PREFIX = {"warning": "⚠ ", "error": "✖ "}


class TrainPanel(QWidget):
    """Runs TrainingSession.run / find_lr in a TrainWorker and shows what it reports.

    Writes `state.train_config` (as edited), `state.training` while a task runs ("follow" while
    it follows a run) and `state.run` when a run has a model; reads the data settings and the
    loaded dataset."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.setObjectName("panel_train")
        self.state = state
        self.session_factory = None  # tests may inject a fake session
        self.last_started: ev.Started | None = None
        self.last_lr_found: ev.LRFound | None = None
        self.last_final = None
        self._warnings: list[str] = []
        self._t0 = 0.0
        self._it0: int | None = None  # the first iteration this attempt trains (a resumed run's is later)
        self._epoch_seconds: list[float] = []  # how long the run's epochs took
        self._fold = (0, 0)  # (fold, folds) while a fold set trains, else (0, 0)
        self.following = ""  # the run folder being followed
        self._followed: TrainConfig | None = None  # its settings, once it has written them
        self._own_settings: TrainConfig | None = None  # the user's, shown again when the following ends
        self._build()
        self.runner = TaskRunner(self, "train", self.progress_train)
        self.runner.busy_changed.connect(self._on_busy)
        self.settings.changed.connect(self._on_settings)
        self.state.train_config = self.settings.config()
        state.watch("environment", self._on_environment)
        state.watch("message", self._log_message)
        state.watch("run", self._on_run)

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.settings = TrainSettings()
        # the finder lives beside the LR range, but runs are controlled here
        self.lr_finder = self.settings.lr_finder
        self.button_find_lr = self.settings.button_find_lr
        self.button_apply_lr = self.settings.button_apply_lr
        self.button_find_lr.clicked.connect(lambda: self.start("find_lr"))
        self.button_apply_lr.clicked.connect(self.apply_suggested_lr)
        self.settings.notice.connect(lambda text: self.state.post("train", "warning", text))
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 4, 0)
        self.label_settings_source = QLabel("", objectName="label_settings_source", wordWrap=True)
        self.label_settings_source.setStyleSheet("background:#ebf8ff;border:1px solid #90cdf4;border-radius:4px;"
                                                 "padding:4px;color:#2a4365;")
        self.label_settings_source.setVisible(False)
        lv.addWidget(self.label_settings_source)
        lv.addWidget(self.settings)
        scroll = QScrollArea(widgetResizable=True, frameShape=QScrollArea.Shape.NoFrame)
        scroll.setWidget(left)
        scroll.setMinimumWidth(380)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(4, 0, 0, 0)
        self.message_bar = MessageBar("train", self.state)
        rv.addWidget(self.message_bar)
        rv.addLayout(self._build_controls())
        self.plots = LivePlots()
        self.preview = PreviewTiles()
        prev_box = QGroupBox("Predictions on validation images")
        QVBoxLayout(prev_box).addWidget(self.preview)
        self.text_log = QPlainTextEdit(objectName="text_log", readOnly=True)
        self.text_log.setMaximumBlockCount(5000)
        self.text_log.setPlaceholderText("What happened in every area, with warnings and errors, is "
                                         "logged here.")
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
        show_state(self.progress_train, "Ready")
        self.label_eta = QLabel("", objectName="label_eta")
        h.addWidget(self.button_train)
        h.addWidget(self.button_stop)
        h.addWidget(self.progress_train, 1)
        h.addWidget(self.label_eta)
        self.button_cluster = QPushButton(resources.icon("export"), "Run on a cluster…",
                                          objectName="button_cluster")
        self.button_cluster.clicked.connect(self.open_cluster_dialog)
        h.addWidget(self.button_cluster)
        return h

    # -- run control -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.runner.busy

    def continue_from(self, run_dir: str) -> bool:
        """Train a new run from `run_dir`'s best model on the current data, read as that run read
        its own (window, mask values): the settings show its architecture and size, a few epochs
        and fine-tuning learning rates."""
        from segstudio.data.folds import is_fold_set
        from segstudio.errors import SegstudioError
        from segstudio.training.fold_set import continue_fold_set
        from segstudio.training.parent import continue_config

        if self.runner.busy:
            self.state.post("train", "warning", "A run is in progress: continue when it has finished.")
            return False
        base, folds = replace(self.settings.config(), data=self.state.data_config), 0
        try:
            if is_fold_set(run_dir):  # a new fold set, each fold from its parent fold
                config, folds, notes = continue_fold_set(run_dir, base)
                for note in notes:
                    self.state.post("train", "warning", note)
            else:
                config = continue_config(run_dir, base)
        except SegstudioError as exc:
            self.state.post("train", "error", str(exc))
            return False
        self.settings.set_config(config)
        return self.start(init_from=config.init_from, config=config, folds=folds)

    def resume(self, run_dir: str) -> bool:
        """Continue a stopped or crashed run from its last checkpoint, with its own settings."""
        if self.runner.busy:
            self.state.post("train", "warning", "A run is in progress: resume when it has finished.")
            return False
        from segstudio.data.folds import is_fold_set  # (its module imports pydicom)

        if is_fold_set(run_dir):
            return self._resume_fold_set(run_dir)
        if not (Path(run_dir) / CHECKPOINT).is_file():
            from segstudio.training.event_log import finished_event

            self.state.post("train", "error", f"{Path(run_dir).name} finished: there is nothing to resume. Continue "
                                              "training from it (Review ▸ Continue training) to train it further."
                            if finished_event(run_dir) else
                            f"{Path(run_dir).name} has no checkpoint to resume from (one is written after each "
                            "finished epoch).")
            return False
        try:
            config = TrainConfig.load(Path(run_dir) / "config.json")
        except (OSError, ValueError) as exc:
            self.state.post("train", "error", f"{Path(run_dir).name} is not a run folder: {exc}")
            return False
        self.settings.set_config(config)
        return self.start(resume=str(run_dir), config=config)

    def _resume_fold_set(self, root: str) -> bool:
        """Continue a fold set where it stopped: its stopped fold from its checkpoint, then the
        folds not trained yet; the trained ones are kept as they are."""
        from segstudio.errors import SegstudioError
        from segstudio.training.fold_set import open_fold_set, trained_folds

        try:
            config, k = open_fold_set(Path(root))
        except (SegstudioError, OSError, ValueError) as exc:
            self.state.post("train", "error", f"{Path(root).name} cannot be resumed: {exc}")
            return False
        if len(trained_folds(Path(root), k)) == k:
            self.state.post("train", "error", f"Every fold of {Path(root).name} is trained: there is nothing to "
                                              "resume.")
            return False
        self.settings.set_config(config)
        return self.start(resume=str(root), config=config)

    def follow(self, run_dir: str) -> bool:
        """Show a run that another process writes (torchrun, a cluster job on a shared file
        system, another app) as it goes, from its events.jsonl; Stop stops the following only."""
        from segstudio.training.event_log import EVENTS

        if self.runner.busy:
            self.state.post("train", "warning", "A run is in progress: follow another when it has finished.")
            return False
        if not (Path(run_dir) / EVENTS).is_file():
            self.state.post("train", "error", f"{Path(run_dir).name} has no {EVENTS} to follow (a run from an older "
                                              "segstudio): open it with File > Open run instead.")
            return False
        self.following, self._own_settings = str(run_dir), self.settings.snapshot()
        self._show_followed_settings()
        return self.start(config=self._followed or TrainConfig(), follow=str(run_dir))

    def _show_followed_settings(self) -> None:
        """The followed run's own settings (its config.json), read-only while it is followed;
        read again when it starts if it had not written them yet."""
        name = Path(self.following).name
        try:
            self._followed = TrainConfig.load(Path(self.following) / "config.json")
        except (OSError, ValueError):
            self._followed = None
            self.label_settings_source.setText(f"Following {name}: its settings are not written yet "
                                               "(config.json); they show here once it starts.")
        else:
            self.settings.set_config(self._followed)
            self.label_settings_source.setText(f"Settings of the followed run {name} (read-only). Yours come "
                                               "back when you stop following.")
        self.label_settings_source.setVisible(True)

    def _session_factory(self, mode: str, follow: str):
        """(session factory, whether the app loads the data): a run followed from its folder, a
        run in a child process (or torchrun) as the settings ask, else a thread of the app."""
        from segstudio.training.follow_session import FollowSession
        from segstudio.training.process_session import ProcessSession

        if follow:
            return (lambda: FollowSession(follow)), False
        processes = self.settings.processes()
        if self.session_factory is None and processes and mode == "train":
            return (lambda: ProcessSession(processes)), False
        return self.session_factory, True

    def start(self, mode: str = "train", init_from: str = "", resume: str = "",
              config: TrainConfig | None = None, follow: str = "", folds: int = 0) -> bool:
        """Start a task: training (a fold set of `folds`, or of the Folds setting's, when >= 2;
        continued from `init_from`, resumed from `resume`), the LR finder, or following a run."""
        if self.runner.busy:
            return False
        config = config or replace(self.settings.config(), data=self.state.data_config, init_from=init_from)
        if not config.data.images and not follow:
            self.state.post("train", "warning", "Choose an image folder and a mask folder first (Data tab).")
            return False
        folds = folds or (self.settings.folds() if mode == "train" and not (init_from or resume or follow) else 1)
        if folds >= 2 and not self._folds_possible(config, folds):
            return False
        factory, in_app = self._session_factory(mode, follow)
        # each fold of a fold set reads the data with its own split
        dataset = self.state.dataset_for(config.data, config.size) if in_app and folds < 2 else None
        worker = TrainWorker(config, dataset, mode, session_factory=factory, resume=resume,
                             folds=folds if folds >= 2 else 0)
        worker.fold_started.connect(self._on_fold_started)
        self._fold = (0, 0)
        worker.run_started.connect(self._on_started)
        worker.phase_changed.connect(lambda p: self.log("info", f"Phase: {p.name}."))
        worker.batches.connect(self._on_batches)
        worker.epoch_ended.connect(self._on_epoch)
        worker.preview.connect(self.preview.show_preview)
        worker.warning.connect(self._on_warning)
        worker.scored.connect(lambda text: self.log("info", f"Validation: {text}."))
        self.last_final = None
        self._warnings: list[str] = []
        self._config = config
        self.message_bar.clear()  # the previous run's outcome is not this one's
        if mode == "train":
            self.plots.reset()
            self.preview.clear()
        if follow:
            self.log("info", f"Following {follow}.")
        else:
            self.log("info", f"{'Training' if mode == 'train' else 'LR finder'} started "
                             f"({config.arch.value}, {config.size}px, batch {config.bs or 'auto'}"
                             + (f", {folds} folds)" if folds >= 2 else ")")
                             + (f", continuing from {Path(init_from).name}." if init_from else
                                f", resuming {Path(resume).name}." if resume else "."))
        self.runner.start_worker(worker, self._on_ended, "Preparing…")
        return True

    def _folds_possible(self, config: TrainConfig, k: int) -> bool:
        """Whether the loaded data has enough patients (or cases) for `k` folds; the reason, with
        the largest number that works, is posted when not. Data not loaded yet is checked when
        the first fold reads it."""
        key = self.state.dataset_key  # the groups do not depend on the size the data was loaded at
        if self.state.dataset is None or not key or key[0] != config.data:
            return True
        dataset = self.state.dataset
        from segstudio.training.fold_set import fold_refusal

        refusal = fold_refusal([dataset.volumes[v].group for v in dataset.item_volume], k)
        if refusal:
            self.state.post("train", "error", refusal)
        return not refusal

    @Slot()
    def open_cluster_dialog(self):
        """The dialog that writes a job folder training these settings on a cluster (cluster_dialog.py)."""
        from segstudio.ui.panels.cluster_dialog import ClusterDialog

        config = replace(self.settings.config(), data=self.state.data_config)
        if not config.data.images:
            self.state.post("train", "warning", "Choose an image folder and a mask folder first (Data tab).")
            return None
        dialog = ClusterDialog(config, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.job_written.connect(lambda job: self.state.post(
            "train", "info", f"Cluster job written to {job.path}: copy it to the cluster, then sbatch job.slurm."))
        dialog.open()
        return dialog

    @Slot()
    def stop(self) -> None:
        """Stop the run (within a batch), or only the following of a run another process trains."""
        if self.runner.busy:
            self.runner.cancel()
            self.button_stop.setEnabled(False)
            self.progress_train.setFormat("Stopping following…" if self.following else "Stopping after this batch…")

    def wait(self, ms: int = 120000) -> bool:
        worker = self.runner.worker
        return worker is None or worker.wait(ms)

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        mode = self.runner.worker.mode if busy and self.runner.worker is not None else ""
        for child in self.settings.findChildren(QGroupBox):
            child.setEnabled(not busy)
        self.button_train.setEnabled(not busy)
        self.button_find_lr.setEnabled(not busy)
        self.button_apply_lr.setEnabled(not busy and self.last_lr_found is not None)
        self.button_stop.setEnabled(busy)
        if not busy and self.following:  # the user's own settings again
            self.following = ""
            self.label_settings_source.setVisible(False)
            self.settings.set_config(self._own_settings)
        self.state.training = "follow" if self.following and mode == "train" else mode

    def log(self, level: str, text: str) -> None:
        """A line in the log only (the run's own history: epochs, phases)."""
        self.text_log.appendPlainText(f"[{time.strftime('%H:%M:%S')}] {LOG_PREFIX.get(level, '')}{text}")

    def _log_message(self, m: Message) -> None:
        area = "" if m.area == "train" else f"{m.area.capitalize()}: "
        self.text_log.appendPlainText(f"[{time.strftime('%H:%M:%S', time.localtime(m.time))}] "
                                      f"{LOG_PREFIX.get(m.level, '')}{area}{m.text}")

    # -- state -------------------------------------------------------------------------------
    def _on_settings(self) -> None:
        if not self.following:  # a followed run's settings are shown, not taken as the user's
            self.state.train_config = self.settings.config()

    def _on_environment(self, env: dict) -> None:
        self.settings.set_weights_available((env or {}).get("pretrained", {}))

    def _on_run(self, run: RunRef | None) -> None:
        """A run opened from disk: its epochs in the plots (a run trained here has them already)."""
        if run is None or run.config is not None or self.runner.busy:
            return
        from segstudio.runs import read_metrics

        rows, codes = read_metrics(run.run_dir)
        self.plots.show_history(rows, codes, volumetric=_volumetric(run.run_dir))
        self.preview.clear()

    # -- worker signals ----------------------------------------------------------------------
    def _on_warning(self, message: str) -> None:
        self._warnings.append(message)
        self.state.post("train", "warning", message)
    def _fold_text(self) -> str:
        """"Fold 2/5 · " while a fold set trains, else ""."""
        fold, k = self._fold
        return f"Fold {fold + 1}/{k} · " if k else ""

    @Slot(int, int, bool)
    def _on_fold_started(self, fold: int, k: int, resumed: bool) -> None:
        """A fold set's next fold: its curves replace the previous fold's (its run folder keeps them)."""
        self._fold = (fold, k)
        self.plots.reset()
        self.preview.clear()
        self.progress_train.setFormat(f"{self._fold_text()}Preparing…")
        self.log("info", f"Fold {fold + 1} of {k} (fold_{fold}, "
                         + ("resumed)." if resumed else "validated on its own cases, trained on the others)."))

    @Slot(object)
    def _on_started(self, s: ev.Started) -> None:
        self.last_started = s
        self._t0, self._it0, self._epoch_seconds = time.monotonic(), None, []
        if self.following and self._followed is None:  # written by now
            self._show_followed_settings()
            self._config = self._followed or self._config
        self.plots.reset(s.codes, tuple(g.name for g in s.groups), s.iters_per_epoch, epochs=s.epochs,
                         volumetric=s.volumetric)
        self.progress_train.setRange(0, max(1, s.epochs * s.iters_per_epoch))
        self.progress_train.setValue(0)
        self.progress_train.setFormat(f"{self._fold_text()}Epoch 1/{s.epochs}")  # a resumed run's: see _on_epoch
        start = (f"starting from the weights of {Path(s.parent_run).name}" if s.parent_run  # a continued run
                 else f"{'pretrained' if s.pretrained else 'random-init'} encoder")
        self.log("info", f"Run folder {s.run_dir}: {s.n_train} train / {s.n_valid} validation images, "
                         f"{start} on {s.device_name}{' (mixed precision)' if s.mixed_precision else ''}, "
                         f"LR {s.lr_lo:.1e}…{s.lr_hi:.1e}, {self._config.size} px" + (f", batches of {s.bs}." if s.bs else "."))

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
        if self._it0 is None:
            self._it0 = batches[0].iteration
        self.progress_train.setRange(0, max(1, total))
        self.progress_train.setValue(done)
        batch = (b.iteration % ipe) + 1 if ipe else done
        elapsed, trained = time.monotonic() - self._t0, done - self._it0  # this attempt's pace
        eta = elapsed / trained * (total - done) if trained > 0 else float("nan")
        if self.following:  # its batches so far arrive at once: the pace is in its epoch times
            eta = (sum(self._epoch_seconds) / len(self._epoch_seconds) / max(ipe, 1) * (total - done)
                   if self._epoch_seconds else float("nan"))
        epochs = total // ipe if ipe else (s.epochs if s else 0)  # a time budget sets them after the first steps
        self.progress_train.setFormat(f"{self._fold_text()}Epoch {b.epoch + 1}/{epochs} · batch {batch}/{ipe or '?'}")
        self.label_eta.setText(f"ETA {fmt_duration(eta)}")

    @Slot(object)
    def _on_epoch(self, e: ev.EpochEnd) -> None:
        self.plots.add_epoch(e)
        self._epoch_seconds.append(e.seconds)
        s = self.last_started
        if s is not None and e.epoch + 1 < e.epochs:  # the next epoch (a resumed run replays those done)
            self.progress_train.setValue(max(self.progress_train.value(), (e.epoch + 1) * s.iters_per_epoch))
            self.progress_train.setFormat(f"{self._fold_text()}Epoch {e.epoch + 2}/{e.epochs}")
        best = " ★ best" if e.is_best else ""
        self.log("info", f"{self._fold_text()}Epoch {e.epoch + 1}/{e.epochs}: train {e.train_loss:.4f}, valid "
                         f"{e.valid_loss:.4f}, Dice {e.dice_mean:.3f} ({e.seconds:.1f} s){best}")

    def _on_ended(self, final) -> None:
        from segstudio.training.fold_set import FoldSetEnded

        self.last_final = final
        self.plots.flush()
        self.label_eta.setText("")
        if isinstance(final, ev.LRFound):
            self.last_lr_found = final
            self.lr_finder.show_result(final.lrs, final.losses, final.suggested_lo, final.suggested_hi)
            self.settings.tabs_lr.setCurrentWidget(self.lr_finder)
            show_state(self.progress_train, "LR finder done", full=True)
            self.log("info", f"LR finder suggests {final.suggested_lo:.1e} … {final.suggested_hi:.1e}.")
        elif isinstance(final, ev.Finished):
            show_state(self.progress_train, f"Finished — best Dice {final.best_dice:.3f}", full=True)
            epochs = f"{final.epochs_done} epoch{'s' if final.epochs_done != 1 else ''}"
            at = f"epoch {final.best_epoch + 1}" if final.best_epoch >= 0 else "the starting model"
            text = f"Finished {epochs}; best Dice {final.best_dice:.3f} ({at}). Model in {final.run_dir}"
            if self._warnings:  # the run's last warning stays in view with its outcome
                text = f"{text} ⚠ {self._warnings[-1]}"
            self.state.post("train", "warning" if self._warnings else "info", text)
            self.state.run = RunRef(final.run_dir, self._config)
        elif isinstance(final, ev.Cancelled):
            dice = "" if math.isnan(final.best_dice) else f"; best Dice {final.best_dice:.3f}"
            if self.following:
                show_state(self.progress_train, "Stopped following")
                self.state.post("train", "info", f"Stopped following {Path(self.following).name}; the run continues "
                                                 f"({final.epochs_done} epoch(s) seen{dice}).")
            else:
                show_state(self.progress_train, "Stopped")
                text = ("LR finder stopped." if self.state.training == "find_lr"
                        else f"Stopped after {final.epochs_done} epoch(s){dice}.")
                if self._warnings:  # warnings stay in view until closed, with the outcome
                    text = f"{text} ⚠ {self._warnings[-1]}"
                self.state.post("train", "warning" if self._warnings else "info", text)
            if final.run_dir and final.epochs_done > 0 and (Path(final.run_dir) / MODEL_FILE).is_file():
                self.state.run = RunRef(final.run_dir, self._config)  # (a followed run may have none yet)
        elif isinstance(final, ev.Failed):
            show_state(self.progress_train, "Failed")
            self.state.post("train", "error", final.message + (f"\n{final.advice}" if final.advice else ""))
        elif isinstance(final, FoldSetEnded):
            self._on_fold_set_ended(final)

    def _on_fold_set_ended(self, end) -> None:
        """A fold set's outcome (a FoldSetEnded); one with a trained fold opens in the Review, out of fold."""
        name, k, last = Path(end.root).name, end.folds, end.last
        kept = (f"{', '.join(f'fold_{f}' for f in end.trained)} {'are' if len(end.trained) > 1 else 'is'} "
                f"trained and kept in {name}")
        if isinstance(last, ev.Failed) and not end.complete:
            show_state(self.progress_train, "Failed")
            text = last.message + (f"\n{last.advice}" if last.advice else "")
            self.state.post("train", "error", f"Fold {self._fold[0] + 1} of {k} failed: {text}\n{kept}."
                            if end.trained else text)
        else:
            if end.complete:
                show_state(self.progress_train, f"Finished — {k} folds", full=True)
                text = (f"Fold set finished: {k} folds in {end.root}. The Review lists every labelled case, each "
                        "predicted by the fold that did not train on it; Predict folder averages the folds.")
            else:
                show_state(self.progress_train, "Stopped")
                text = (f"Stopped in fold {self._fold[0] + 1} of {k}: "
                        + (kept if end.trained else "no fold is trained")
                        + ("; File ▸ Resume run continues it." if Path(end.root).exists() else "; nothing was kept."))
            if self._warnings:
                text = f"{text} ⚠ {self._warnings[-1]}"
            self.state.post("train", "warning" if self._warnings else "info", text)
        if end.trained:
            self.state.run = RunRef(end.root, self._config)

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


def _volumetric(run_dir: str) -> bool:
    """The run trained on 3-D scans (its model.json says how they were sliced)."""
    try:
        return "volumes" in json.loads((Path(run_dir) / MODEL_META).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False
