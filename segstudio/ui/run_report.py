"""File ▸ Save run report: asks which file, writes the run's report page in a worker
(reporting.write_run_report) with its progress and a Cancel button in the status bar."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtGui import QAction, QDesktopServices
from PySide6.QtWidgets import QFileDialog, QMainWindow, QProgressBar, QToolButton

from segstudio.ui import resources
from segstudio.ui.state import AppState
from segstudio.ui.tasks import TaskRunner
from segstudio.workers import run_report_task

REPORT_NAME = "report.html"


class RunReportSaver(QObject):
    """The action, its worker and its progress for one window; the run is the one the Review
    shows (state.run), else one the user picks."""

    def __init__(self, window: QMainWindow, state: AppState):
        super().__init__(window)
        self.window, self.state = window, state
        self.action = QAction(resources.icon("export"), "Save run report…", window)
        self.action.setObjectName("action_save_report")
        self.action.setToolTip("One HTML page about a run (data, settings, learning curves, per-case metrics,\n"
                               "the worst and best cases, calibration) to share, e.g. by mail")
        self.action.triggered.connect(lambda: self.save())
        self.bar = QProgressBar(objectName="progress_report", textVisible=True, visible=False)
        self.bar.setMaximumWidth(360)
        self.button_cancel = QToolButton(objectName="button_cancel_report", text="Cancel", visible=False)
        self.button_cancel.setToolTip("Stop writing the run report (nothing is written)")
        self.button_cancel.clicked.connect(lambda: self.runner.cancel())
        window.statusBar().addWidget(self.bar)
        window.statusBar().addWidget(self.button_cancel)
        self.runner = TaskRunner(self, "report", self.bar, on_error=self._on_error)
        self.runner.busy_changed.connect(self._on_busy)
        self.written: Path | None = None  # the last report written

    def save(self, run_dir: str | None = None, out: str | None = None) -> bool:
        """Write `run_dir`'s report to `out` (asked for when not given); False when nothing starts."""
        if self.runner.busy:
            return False
        run_dir = run_dir or (self.state.run.run_dir if self.state.run is not None else "")
        if not run_dir:
            from segstudio.runs import default_runs_dir

            run_dir = QFileDialog.getExistingDirectory(self.window, "Which run?", str(default_runs_dir()))
            if not run_dir:
                return False
        if not out:
            out, _ = QFileDialog.getSaveFileName(self.window, "Save run report", str(Path(run_dir) / REPORT_NAME),
                                                 "Web page (*.html)")
            if not out:
                return False
        if Path(out).suffix.lower() not in (".html", ".htm"):
            out += ".html"
        return self.runner.start(run_report_task, run_dir, out, label=f"Writing the report of {Path(run_dir).name}…",
                                 on_done=self._on_done, on_cancelled=lambda: self.state.post(
                                     "app", "info", "Run report cancelled; nothing was written."))

    def wait(self, ms: int = 30000) -> bool:
        return self.runner.wait(ms)

    def _on_busy(self, busy: bool) -> None:
        self.bar.setVisible(busy)
        self.button_cancel.setVisible(busy)
        self.action.setEnabled(not busy)

    def _on_done(self, path) -> None:
        self.written = Path(path)
        self.state.post("app", "info", f"Run report saved to {path}.",
                        ("Open", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))))

    def _on_error(self, message: str, details: str) -> None:
        self.state.post("app", "error",
                        f"The run report was not written: {message}" + (f"\n{details}" if details else ""))
