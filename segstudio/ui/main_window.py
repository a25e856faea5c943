"""The main window: builds the state, the three areas (Data, Train, Review), menus, status bar and
drag-and-drop, and connects them. Wiring only: the panels talk through the AppState."""

from __future__ import annotations

import platform
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QAction, QGuiApplication, QIcon, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QTabWidget, QVBoxLayout, QWidget

import segstudio
from segstudio.config import DEMO_SETTINGS, DEMO_VOLUME_CONTEXT, DEMO_VOLUME_SETTINGS
from segstudio.ui import resources
from segstudio.ui.panels.data_panel import DataPanel
from segstudio.ui.panels.review_panel import ReviewPanel
from segstudio.ui.panels.train_panel import TrainPanel
from segstudio.ui.message_bar import MessageBar
from segstudio.ui.run_report import RunReportSaver
from segstudio.ui.settings import Settings
from segstudio.ui.state import AppState, Message, RunRef
from segstudio.ui.tasks import TaskRunner
from segstudio.workers import probe_environment, sample_dataset_task, sample_volumes_task

DATA, TRAIN, REVIEW = 0, 1, 2
DEFAULT_SIZE = QSize(1320, 860)


class MainWindow(QMainWindow):
    error_reported = Signal(str)  # every error the user is shown (the self-test listens)

    def __init__(self, settings: Settings | None = None, probe: bool = True):
        super().__init__()
        self.setObjectName("main_window")
        self.setWindowTitle("segstudio")
        self.setWindowIcon(resources.app_icon())
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.state = AppState()
        self._close_after_stop = False
        self._activities: dict[str, str] = {}  # what runs, by runner: the status bar shows the latest
        self.tasks = TaskRunner(self, "app", on_error=lambda m, d: self.state.post(
            "data", "error", m + (f"\n{d}" if d else "")))  # the samples are the Data area's
        self.probe = TaskRunner(self, "probe", on_error=self._on_probe_failed)

        self.data_panel = DataPanel(self.state)
        self.train_panel = TrainPanel(self.state)
        self.review_panel = ReviewPanel(self.state)
        self.review_panel.continue_requested = self.continue_training
        self.tabs = QTabWidget(objectName="tabs", documentMode=False)
        self.tabs.addTab(self.data_panel, resources.icon("data"), "Data")
        self.tabs.addTab(self.train_panel, resources.icon("train"), "Train")
        self.tabs.addTab(self.review_panel, resources.icon("review"), "Review")
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(MessageBar("app", self.state))
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self._build_status()
        self.report = RunReportSaver(self, self.state)  # File ▸ Save run report
        self._build_menus()
        self._connect()
        self._restore()
        if probe:
            self.probe.start(probe_environment, on_done=lambda env: setattr(self.state, "environment", env))

    @property
    def environment(self) -> dict | None:
        return self.state.environment

    # -- construction ------------------------------------------------------------------------
    def _build_status(self) -> None:
        sb = self.statusBar()
        self.label_device = QLabel("Device: detecting…", objectName="label_device")
        self.label_dataset = QLabel("No dataset", objectName="label_dataset")
        self.label_state = QLabel("Idle", objectName="label_state")
        for w in (self.label_device, self.label_dataset, self.label_state):
            sb.addPermanentWidget(w)

    def _action(self, name: str, text: str, slot, shortcut=None, icon: str = "") -> QAction:
        act = QAction(resources.icon(icon) if icon else QIcon(), text, self)
        act.setObjectName(name)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        return act

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.action_open_images = self._action("action_open_images", "Open image folder…",
                                               lambda: self.data_panel.browse("images"), "Ctrl+O", "folder")
        self.action_open_masks = self._action("action_open_masks", "Open mask folder…",
                                              lambda: self.data_panel.browse("masks"), "Ctrl+M", "mask")
        self.action_open_sample = self._action("action_open_sample", "Open sample dataset",
                                               self.open_sample, None, "sample")
        self.action_open_volume_sample = self._action("action_open_volume_sample",
                                                      "Open sample of 3-D scans (NIfTI)",
                                                      self.open_volume_sample, None, "sample")
        self.action_open_run = self._action("action_open_run", "Open run…",
                                            self.review_panel.choose_run, "Ctrl+R", "run")
        self.action_predict_folder = self._action("action_predict_folder", "Predict folder…",
                                          lambda: self.review_panel.predict_folder(), "Ctrl+E", "export")
        self.action_export_model = self._action("action_export_model", "Export model (ONNX/TorchScript)…",
                                                lambda: self.review_panel.export_model(), icon="export")
        self.action_resume = self._action("action_resume_run", "Resume run…", self.choose_resume, icon="run")
        self.action_follow = self._action("action_follow_run", "Follow run…", self.choose_follow, icon="run")
        self.action_quit = self._action("action_quit", "Quit", self.close, QKeySequence.StandardKey.Quit)
        for a in (self.action_open_images, self.action_open_masks, self.action_open_sample,
                  self.action_open_volume_sample):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.action_open_run)
        file_menu.addAction(self.action_resume)
        file_menu.addAction(self.action_follow)
        file_menu.addAction(self.action_predict_folder)
        file_menu.addAction(self.action_export_model)
        self.action_save_report = self.report.action
        file_menu.addAction(self.action_save_report)
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("action_about", "About segstudio", self.show_about))
        help_menu.addAction(self._action("action_versions", "Versions", self.show_versions))

    def _connect(self) -> None:
        s = self.state
        s.watch("dataset", lambda _: self._show_dataset())
        s.watch("training", self._on_training)
        s.watch("environment", self._on_environment)
        s.watch("message", self._on_message)
        s.watch("run", self._on_run)
        s.watch("train_config", lambda c: self.settings.set_train_config(replace(c, data=s.data_config)))
        s.watch("data_config", self._remember_folders)
        for runner in (self.data_panel.runner, self.review_panel.runner, self.tasks, self.report.runner):
            runner.busy_changed.connect(lambda busy, r=runner: self._show_activity(r.name, r.label if busy else ""))

    def _restore(self) -> None:
        config = self.settings.train_config()
        data = replace(config.data if config else self.state.data_config,
                       images=self.settings.last_folder("images"), masks=self.settings.last_folder("masks"))
        if config is not None:
            self.train_panel.settings.set_config(config)
        self.data_panel.set_data_config(data)
        geometry, state = self.settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(DEFAULT_SIZE)
        self.fit_to_screen()
        if state is not None:
            self.restoreState(state)
        tab = self.settings.value("window/tab", 0)
        self.tabs.setCurrentIndex(int(tab) if str(tab).isdigit() else 0)

    def fit_to_screen(self) -> None:
        """A saved size larger than the screen (or absurd, from a widened layout) is not kept."""
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return
        room = screen.availableGeometry()
        if self.width() > room.width() or self.height() > room.height():
            self.resize(min(DEFAULT_SIZE.width(), room.width()), min(DEFAULT_SIZE.height(), room.height()))
            self.move(room.topLeft())

    def save_settings(self) -> None:
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.set_value("window/tab", self.tabs.currentIndex())
        self.settings.set_train_config(replace(self.state.train_config, data=self.state.data_config))
        self.settings.sync()

    # -- reactions ---------------------------------------------------------------------------
    @Slot()
    def open_sample(self) -> None:
        self.state.post("data", "info", "Preparing the built-in CT phantom sample dataset…")
        self.train_panel.settings.update(**DEMO_SETTINGS)
        self.tasks.start(sample_dataset_task, label="Preparing the sample dataset…",
                         on_done=lambda r: self.data_panel.set_folders(str(r[0]), str(r[1]), load=True))
        self.tabs.setCurrentIndex(DATA)

    @Slot()
    def open_volume_sample(self) -> None:
        self.state.post("data", "info", "Preparing the built-in sample of 3-D phantom CT scans…")
        self.train_panel.settings.update(**DEMO_VOLUME_SETTINGS)
        self.data_panel.set_data_config(replace(self.state.data_config, context=DEMO_VOLUME_CONTEXT))
        self.tasks.start(sample_volumes_task, label="Preparing the sample scans…",
                         on_done=lambda root: self.data_panel.set_folders(str(root), "", load=True))
        self.tabs.setCurrentIndex(DATA)

    def _show_dataset(self) -> None:
        s = self.state
        if s.dataset is None:
            self.label_dataset.setText("No dataset")
            return
        d = s.dataset
        what = f"{len(d.volumes)} scans, {len(d)} slices" if d.volumetric else f"{len(d)} images"
        self.label_dataset.setText(f"{what} ({len(d.train_idx)} train / {len(d.valid_idx)} valid), "
                                   f"{len(d.codes)} classes, loaded at {d.size}px")

    def _remember_folders(self, data) -> None:
        if data.images:
            self.settings.set_last_folder("images", data.images)
        if data.masks:
            self.settings.set_last_folder("masks", data.masks)

    def _on_probe_failed(self, message: str, details: str) -> None:
        self.label_device.setText("Device: unknown")
        self.state.post("app", "warning", f"Could not detect the compute device: {message}"
                        + (f"\n{details}" if details else ""))

    def _on_environment(self, env: dict) -> None:
        kind = env.get("device_kind", "cpu")
        self.label_device.setText(f"Device: {env.get('device_name', kind)}")
        self.label_device.setToolTip(f"Training runs on {kind.upper()} with the 'auto' device setting")

    def _on_training(self, mode: str) -> None:
        for w in (self.action_open_images, self.action_open_masks, self.action_open_sample,
                  self.action_open_volume_sample):
            w.setEnabled(not mode)
        size = self.state.train_config.size
        self._show_activity("train", {"train": f"Training at {size} px", "find_lr": f"Finding LR at {size} px",
                                      "follow": f"Following {Path(self.train_panel.following).name}"}.get(mode, ""))
        if not mode and self._close_after_stop:
            self.close()

    def _on_run(self, run: RunRef | None) -> None:
        if run is not None and run.config is not None:
            self.state.post("review", "info", "Computing predictions for review…")

    def _on_message(self, m: Message) -> None:
        first = m.text.splitlines()[0] if m.text else ""
        self.statusBar().showMessage(first, 8000)
        if m.level == "error":
            self.error_reported.emit(m.text)

    def _show_activity(self, key: str, text: str) -> None:
        """What `key` (a runner, or training) does now, "" when done: the status bar shows the
        latest work still running, "Idle" when none is."""
        self._activities.pop(key, None)
        if text:
            self._activities[key] = text
        self.label_state.setText(next(reversed(self._activities.values()), "Idle"))

    # -- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            if not self.state.training:
                event.acceptProposedAction()
                return
        event.ignore()

    def dropEvent(self, event) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths and self.data_panel.drop_paths(paths):
            self.tabs.setCurrentIndex(DATA)
            event.acceptProposedAction()
        else:
            event.ignore()

    # -- help --------------------------------------------------------------------------------
    def show_about(self) -> None:
        QMessageBox.about(self, "About segstudio", (
            f"<h3>segstudio {segstudio.__version__}</h3><p>Train a segmentation network on your own "
            "images, watch it learn, and review its masks — without writing code.</p>"
            "<p>U-Net with a ResNet encoder (fastai), discriminative learning rates.</p>"))

    def show_versions(self) -> QMessageBox:
        rows = [("segstudio", segstudio.__version__), ("Python", platform.python_version())]
        for dist in ("PySide6", "pyqtgraph", "superqt", "numpy", "torch", "fastai", "pydicom"):
            try:
                rows.append((dist, metadata.version(dist)))
            except metadata.PackageNotFoundError:
                rows.append((dist, "not installed"))
        env = self.state.environment or {}
        rows.append(("Device", env.get("device_name", "unknown")))
        rows.append(("Platform", f"{platform.system()} {platform.release()} ({sys.platform})"))
        text = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in rows)
        box = QMessageBox(QMessageBox.Icon.Information, "Versions", f"<table>{text}</table>",
                          QMessageBox.StandardButton.Ok, self)
        box.setObjectName("dialog_versions")
        box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        return box

    # -- closing -----------------------------------------------------------------------------
    def confirm_stop_run(self) -> bool:
        if self.state.training == "find_lr":
            title, text = "Stop the LR finder?", "The LR finder is running. Stop it and quit?"
        else:
            title, text = "Stop training?", ("A training run is in progress. Stop it and quit?\n"
                                             "The best model so far stays in the run folder.")
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def choose_resume(self, run_dir: str | None = None) -> bool:
        """Pick a stopped or crashed run and continue it in the Train area."""
        from segstudio.runs import default_runs_dir

        run_dir = run_dir or QFileDialog.getExistingDirectory(self, "Resume a run", str(default_runs_dir()))
        if not run_dir:
            return False
        self.tabs.setCurrentWidget(self.train_panel)
        return self.train_panel.resume(run_dir)

    def choose_follow(self, run_dir: str | None = None) -> bool:
        """Pick a run that another process is writing (torchrun, a cluster job) and show it live."""
        from segstudio.runs import default_runs_dir

        run_dir = run_dir or QFileDialog.getExistingDirectory(self, "Follow a run", str(default_runs_dir()))
        if not run_dir:
            return False
        self.tabs.setCurrentWidget(self.train_panel)
        return self.train_panel.follow(run_dir)

    def continue_training(self, run_dir: str) -> bool:
        self.tabs.setCurrentWidget(self.train_panel)
        return self.train_panel.continue_from(run_dir)

    def confirm_unsaved_corrections(self) -> bool:
        """Save, discard or keep open when corrections are unsaved; True when closing may go on."""
        unsaved = self.review_panel.model.unsaved()
        if not unsaved:
            return True
        B = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Unsaved corrections",
            f"{len(unsaved)} corrected mask(s) are not saved. Save them to the corrections folder?",
            B.Save | B.Discard | B.Cancel, B.Save)
        if answer == B.Cancel:
            return False
        if answer == B.Save:
            self.review_panel.save_runner.wait(30000)
            _, problems = self.review_panel.model.save()
            if problems:
                QMessageBox.warning(self, "Not saved", "\n".join(problems))
                return False
        else:
            self.review_panel.model.discard()
        return True

    def closeEvent(self, event) -> None:
        if not self._close_after_stop and not self.confirm_unsaved_corrections():
            event.ignore()
            return
        if self.state.training and self.train_panel.runner.running:
            if self._close_after_stop or self.state.training == "follow" or self.confirm_stop_run():
                # stop cooperatively; the window closes when the thread has ended (never terminate)
                self._close_after_stop = True
                self.train_panel.stop()
                self._show_activity("train", "Stopping before closing…")
            event.ignore()
            return
        self.save_settings()
        for runner in (self.data_panel, self.review_panel, self.tasks, self.probe, self.report):
            runner.wait(30000)
        super().closeEvent(event)
