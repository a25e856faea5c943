""""Run on a cluster…": writes a job folder (cluster.job.write_job) for the current training settings."""

from __future__ import annotations

import html
import time
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
    QPushButton, QSpinBox, QVBoxLayout, QWidget,
)

from segstudio.cluster.job import JobFolder, default_data_root, slurm_time, write_job
from segstudio.config import TrainConfig
from segstudio.ui import resources
from segstudio.ui.tasks import TaskRunner, show_state

INTRO = ("Writes a folder that trains these settings with torchrun on a Slurm cluster, or on one machine "
         "with several GPUs: the settings, a list of the dataset's files (to check the copy), job.slurm and "
         "run_local.sh. The data folders are stored relative to the data root.")


def new_job_folder(parent: Path) -> Path:
    return parent / f"segstudio-job-{time.strftime('%Y%m%d-%H%M%S')}"


class ClusterDialog(QDialog):
    """Data root, nodes, GPUs per node, time limit and job folder; writes the job in a TaskRunner."""

    job_written = Signal(object)  # the JobFolder

    def __init__(self, config: TrainConfig, parent=None):
        super().__init__(parent)
        self.setObjectName("dialog_cluster")
        self.setWindowTitle("Run on a cluster")
        self.config = config
        self.job: JobFolder | None = None
        self._build()
        self.runner = TaskRunner(self, "cluster_job", self.progress_job, on_error=self._on_error)
        self.runner.busy_changed.connect(self._on_busy)

    def _build(self) -> None:
        intro = QLabel(INTRO, wordWrap=True)
        self.path_data_root = QLineEdit(default_data_root(self.config.data.images, self.config.data.masks),
                                        objectName="path_data_root")
        self.value_nodes = QSpinBox(objectName="value_nodes", minimum=1, maximum=1024, value=1)
        self.value_gpus = QSpinBox(objectName="value_gpus", minimum=1, maximum=64, value=4)
        self.value_hours = QSpinBox(objectName="value_hours", minimum=1, maximum=24 * 30, value=4, suffix=" h")
        self.path_job = QLineEdit(str(new_job_folder(Path.home())), objectName="path_job")
        self.label_processes = QLabel(objectName="label_processes")
        for spin in (self.value_nodes, self.value_gpus, self.value_hours):
            spin.setMaximumWidth(120)
        for spin in (self.value_nodes, self.value_gpus):
            spin.valueChanged.connect(self._show_processes)
        self._show_processes()
        form = QFormLayout()
        form.setContentsMargins(0, 4, 0, 4)
        form.addRow("Data root", self._with_browse(self.path_data_root, self.browse_data_root))
        form.addRow("Nodes", self.value_nodes)
        form.addRow("GPUs per node", self.value_gpus)
        form.addRow("", self.label_processes)
        form.addRow("Time limit", self.value_hours)
        form.addRow("Job folder", self._with_browse(self.path_job, self.browse_job))
        self.form = QWidget()
        self.form.setLayout(form)

        self.progress_job = QProgressBar(objectName="progress_job", textVisible=True)
        self.progress_job.hide()  # until a job is written
        self.label_result = QLabel("", objectName="label_result", wordWrap=True,
                                   textFormat=Qt.TextFormat.RichText,
                                   textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.button_write = buttons.addButton("Write job folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.button_write.setObjectName("button_write_job")
        self.button_write.setIcon(resources.icon("export"))
        self.button_write.setDefault(True)
        self.button_write.clicked.connect(self.write)
        buttons.rejected.connect(self.reject)
        v = QVBoxLayout(self)
        for widget in (intro, self.form, self.progress_job, self.label_result, buttons):
            v.addWidget(widget)
        self.setMinimumWidth(560)

    def _with_browse(self, edit: QLineEdit, slot) -> QWidget:
        row = QWidget()
        h = QHBoxLayout(row)
        h.setContentsMargins(0, 0, 0, 0)
        button = QPushButton(resources.icon("folder"), "", objectName=f"button_browse_{edit.objectName()}")
        button.setToolTip("Choose…")
        button.clicked.connect(slot)
        h.addWidget(edit, 1)
        h.addWidget(button)
        return row

    def _show_processes(self) -> None:
        n = self.value_nodes.value() * self.value_gpus.value()
        self.label_processes.setText(f"{n} training process{'es' if n != 1 else ''}, one per GPU")

    @Slot()
    def browse_data_root(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data root: the folder holding the data folders",
                                                self.path_data_root.text())
        if path:
            self.path_data_root.setText(path)

    @Slot()
    def browse_job(self) -> None:
        """A chosen folder that holds files gets a new job folder inside it."""
        path = QFileDialog.getExistingDirectory(self, "Job folder", str(Path(self.path_job.text()).parent))
        if path:
            folder = Path(path)
            self.path_job.setText(str(new_job_folder(folder) if any(folder.iterdir()) else folder))

    @Slot()
    def write(self) -> bool:
        root, out = self.path_data_root.text().strip(), self.path_job.text().strip()
        if not root or not out:
            self._on_error("Choose a data root and a job folder.", "")
            return False
        self.label_result.setText("")
        self.progress_job.show()
        task = partial(write_job, time_limit=slurm_time(self.value_hours.value()))
        return self.runner.start(task, self.config, root, out, self.value_nodes.value(), self.value_gpus.value(),
                                 on_done=self._on_done, label="Listing the dataset…")

    def _on_done(self, job: JobFolder) -> None:
        self.job = job
        show_state(self.progress_job, f"Wrote the job: {job.n_files} dataset files", full=True)
        self.label_result.setText(
            f"Job folder: <b>{html.escape(str(job.path))}</b><br>Copy it to the cluster with the dataset (see its "
            "README.txt), then submit it from that folder: <code>sbatch job.slurm</code><br>On one machine with "
            "several GPUs: <code>./run_local.sh</code>")
        self.job_written.emit(job)

    def _on_error(self, message: str, details: str) -> None:
        show_state(self.progress_job, "Not written")
        self.progress_job.show()
        self.label_result.setText(f"✖ {html.escape(message)}")

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        self.form.setEnabled(not busy)
        self.button_write.setEnabled(not busy)

    def reject(self) -> None:  # Close, Esc, the window's close button: stop a listing first
        self.runner.wait()
        super().reject()
