"""The main window: three tabs (Data, Train, Review), menus, status bar, drag-and-drop. Wiring only."""

from __future__ import annotations

import platform
from dataclasses import replace
import sys
from importlib import metadata

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QTabWidget

import segstudio
from segstudio.config import DEMO_SETTINGS
from segstudio.ui import resources
from segstudio.ui.panels.data_panel import DataPanel
from segstudio.ui.panels.review_panel import ReviewPanel
from segstudio.ui.panels.train_panel import TrainPanel
from segstudio.ui.settings import Settings
from segstudio.workers import TaskWorker, probe_environment, sample_dataset_task

DATA, TRAIN, REVIEW = 0, 1, 2


class MainWindow(QMainWindow):
    error_reported = Signal(str)  # every error the user is shown (the self-test listens)

    def __init__(self, settings: Settings | None = None, probe: bool = True):
        super().__init__()
        self.setObjectName("main_window")
        self.setWindowTitle("segstudio")
        self.setWindowIcon(resources.app_icon())
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self._tasks: list[TaskWorker] = []
        self._close_after_stop = False
        self.environment: dict | None = None

        self.data_panel = DataPanel()
        self.train_panel = TrainPanel()
        self.review_panel = ReviewPanel()
        self.tabs = QTabWidget(objectName="tabs", documentMode=False)
        self.tabs.addTab(self.data_panel, resources.icon("data"), "Data")
        self.tabs.addTab(self.train_panel, resources.icon("train"), "Train")
        self.tabs.addTab(self.review_panel, resources.icon("review"), "Review")
        self.setCentralWidget(self.tabs)
        self._build_status()
        self._build_menus()
        self._wire()
        self._restore()
        if probe:
            self._run_task(probe_environment, "probe", self._on_environment)

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
                                               lambda: self.data_panel._browse("images"), "Ctrl+O", "folder")
        self.action_open_masks = self._action("action_open_masks", "Open mask folder…",
                                              lambda: self.data_panel._browse("masks"), "Ctrl+M", "mask")
        self.action_open_sample = self._action("action_open_sample", "Open sample dataset",
                                               self.open_sample, None, "sample")
        self.action_open_run = self._action("action_open_run", "Open run…",
                                            self.review_panel.choose_run, "Ctrl+R", "run")
        self.action_export = self._action("action_export_masks", "Export masks…",
                                          lambda: self.review_panel.export_masks(), "Ctrl+E", "export")
        self.action_quit = self._action("action_quit", "Quit", self.close, QKeySequence.StandardKey.Quit)
        for a in (self.action_open_images, self.action_open_masks, self.action_open_sample):
            file_menu.addAction(a)
        file_menu.addSeparator()
        file_menu.addAction(self.action_open_run)
        file_menu.addAction(self.action_export)
        file_menu.addSeparator()
        file_menu.addAction(self.action_quit)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("action_about", "About segstudio", self.show_about))
        help_menu.addAction(self._action("action_versions", "Versions", self.show_versions))

    def _wire(self) -> None:
        dp, tp, rp = self.data_panel, self.train_panel, self.review_panel
        dp.size_provider = tp.settings.value_size.value
        tp.data_provider = lambda size: (dp.data_config(), dp.dataset_for(dp.data_config(), size))
        dp.dataset_loaded.connect(self._on_dataset)
        dp.dataset_cleared.connect(lambda: self.label_dataset.setText("No dataset"))
        dp.folders_changed.connect(self._remember_folders)
        dp.busy_changed.connect(lambda b: self._set_state("Loading data…" if b else "Idle"))
        tp.running_changed.connect(self._on_running)
        tp.state_changed.connect(self._set_state)
        tp.run_finished.connect(self._on_run_finished)
        tp.settings.changed.connect(lambda: self.settings.set_train_config(tp.settings.config()))
        for panel in (dp, tp, rp):
            panel.message.connect(self.report)

    def _restore(self) -> None:
        config = self.settings.train_config()
        if config is not None:
            self.train_panel.settings.set_config(config)
        self.data_panel.set_folders(self.settings.last_folder("images"), self.settings.last_folder("masks"))
        if config is not None:  # the DICOM window and validation share saved with the settings
            current = self.data_panel.data_config()
            self.data_panel.set_data_config(replace(config.data, images=current.images, masks=current.masks))
        geometry, state = self.settings.window_state()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1320, 860)
        if state is not None:
            self.restoreState(state)
        tab = self.settings.value("window/tab", 0)
        self.tabs.setCurrentIndex(int(tab) if str(tab).isdigit() else 0)

    def save_settings(self) -> None:
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.set_value("window/tab", self.tabs.currentIndex())
        self.settings.set_train_config(self.train_panel.settings.config(self.data_panel.data_config()))
        self.settings.sync()

    # -- tasks -------------------------------------------------------------------------------
    def _run_task(self, fn, name: str, on_result) -> TaskWorker:
        w = TaskWorker(fn, name, self)
        w.result.connect(on_result)
        w.failed.connect(lambda m, d: self.report("error", m + (f"\n{d}" if d else "")))
        w.finished.connect(lambda: self._task_done(w))
        self._tasks.append(w)
        w.start()
        return w

    def _task_done(self, w: TaskWorker) -> None:
        if w in self._tasks:
            self._tasks.remove(w)
        w.deleteLater()

    @Slot(object)
    def _on_environment(self, env: dict) -> None:
        self.environment = env
        kind = env.get("device_kind", "cpu")
        self.label_device.setText(f"Device: {env.get('device_name', kind)}")
        self.label_device.setToolTip(f"Training runs on {kind.upper()} with the 'auto' device setting")
        self.train_panel.settings.set_weights_available(env.get("pretrained", {}))

    @Slot()
    def open_sample(self) -> None:
        self.report("info", "Preparing the built-in CT phantom sample dataset…")
        self.train_panel.settings.update(**DEMO_SETTINGS)
        self._run_task(sample_dataset_task, "sample",
                       lambda r: self.data_panel.set_folders(str(r[0]), str(r[1]), load=True))
        self.tabs.setCurrentIndex(DATA)

    # -- reactions ---------------------------------------------------------------------------
    @Slot(object, object)
    def _on_dataset(self, dataset, report) -> None:
        self.label_dataset.setText(f"{len(dataset.names)} images ({report.n_train} train / {report.n_valid} valid), "
                                   f"{len(dataset.codes)} classes, {dataset.size}px")

    @Slot(str, str)
    def _remember_folders(self, images: str, masks: str) -> None:
        if images:
            self.settings.set_last_folder("images", images)
        if masks:
            self.settings.set_last_folder("masks", masks)

    @Slot(bool)
    def _on_running(self, running: bool) -> None:
        for w in (self.data_panel, self.action_open_images, self.action_open_masks,
                  self.action_open_sample):
            w.setEnabled(not running)
        if not running and self._close_after_stop:
            self.close()

    @Slot(object)
    def _on_run_finished(self, final) -> None:
        self.report("info", "Computing predictions for review…")
        cfg = self.train_panel.last_config  # the data the run used, if it is still the loaded one
        self.review_panel.load_run(final.run_dir, self.data_panel.dataset_for(cfg.data, cfg.size))

    @Slot(str)
    def _set_state(self, text: str) -> None:
        self.label_state.setText(text)

    @Slot(str, str)
    def report(self, level: str, text: str) -> None:
        """Messages from any panel: log pane, status bar and, for errors, a dialog."""
        self.train_panel.log(level, text)
        self.statusBar().showMessage(text.splitlines()[0] if text else "", 8000)
        if level == "error":
            self.error_reported.emit(text)
            first, _, rest = text.partition("\n")
            self.train_panel.show_error("segstudio", first, rest)

    # -- drag and drop -----------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            if not self.train_panel.running:
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
        env = self.environment or {}
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
        answer = QMessageBox.question(
            self, "Stop training?", "A training run is in progress. Stop it and quit?\n"
            "The best model so far stays in the run folder.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event) -> None:
        if self.train_panel.running:
            if self._close_after_stop or self.confirm_stop_run():
                # stop cooperatively; the window closes when the thread has ended (never terminate)
                self._close_after_stop = True
                self.train_panel.stop()
                self._set_state("Stopping the run before closing…")
            event.ignore()
            return
        self.save_settings()
        self.data_panel.wait()
        self.review_panel.wait()
        for w in list(self._tasks):
            w.stop()
            w.wait(30000)
        super().closeEvent(event)
