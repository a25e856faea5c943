"""Whether the chosen architecture's ImageNet weights are cached, and a button to download them."""

from __future__ import annotations

import math

from PySide6.QtCore import QCoreApplication, Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton, QWidget

from segstudio.ui.tasks import TaskRunner

MB = 1_000_000


def download_task(arch: str, *, progress, should_stop) -> str:
    """Runs in the TaskRunner's thread: the download, its progress in whole MB (Qt ints)."""
    from segstudio.model.weights_download import download_weights

    def report(done: int, total: int) -> None:
        progress(done // MB, math.ceil(total / MB), "Downloading (MB)")
    return str(download_weights(arch, progress=report, should_stop=should_stop))


class WeightsBox(QWidget):
    """"ImageNet weights: cached / not downloaded [Download weights…]"; the download asks first,
    then runs in a TaskRunner with a progress bar and Cancel. Hidden while availability is unknown."""

    downloaded = Signal(str)  # the arch whose weights are now in the cache
    failed = Signal(str)  # a message for the user

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("weights_box")
        self.arch, self.available = "", None
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        self.label_weights_status = QLabel(objectName="label_weights_status", wordWrap=True)
        self.button_download_weights = QPushButton("Download weights…", objectName="button_download_weights")
        self.button_download_weights.setToolTip("Download torchvision's ImageNet weights for this "
                                                "architecture into the local torch cache")
        self.progress_weights = QProgressBar(objectName="progress_weights", textVisible=True, minimumWidth=60)
        self.button_cancel_weights = QPushButton("Cancel", objectName="button_cancel_weights")
        h.addWidget(self.label_weights_status, 1)
        h.addWidget(self.progress_weights, 1)  # in the label's place while downloading
        h.addWidget(self.button_download_weights)
        h.addWidget(self.button_cancel_weights)
        self.runner = TaskRunner(self, "weights", self.progress_weights, on_error=self._on_error)
        self.runner.busy_changed.connect(self._refresh)
        self.button_download_weights.clicked.connect(self.download)
        self.button_cancel_weights.clicked.connect(self.runner.cancel)
        app = QCoreApplication.instance()
        if app is not None:  # never leave the thread running when the app quits
            app.aboutToQuit.connect(self.wait)
        self._refresh()

    def set_state(self, arch: str, available: bool | None) -> None:
        """The architecture shown and whether its weights are cached (None: not known yet)."""
        self.arch, self.available = arch, available
        self._refresh()

    @Slot()
    def download(self) -> None:
        """Ask, then download the shown architecture's weights in the background."""
        from segstudio.model.weights_download import weights_info

        if self.runner.busy or not self.arch:
            return
        info = weights_info(self.arch)
        size = f" (about {info.size / MB:.0f} MB)" if info.size else ""
        answer = QMessageBox.question(
            self, "Download weights",
            f"Download the ImageNet weights of {self.arch}{size} from\n{info.url}\ninto {info.file.parent}?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes)
        if answer != QMessageBox.StandardButton.Yes:
            return
        arch = self.arch
        self.runner.start(download_task, arch, on_done=lambda _path: self._on_done(arch),
                          label=f"Downloading {arch}…")

    @Slot()
    def wait(self, ms: int = 60000) -> bool:
        """Stop a download and wait for its thread (the app is closing)."""
        return self.runner.wait(ms)

    def _on_done(self, arch: str) -> None:
        self.label_weights_status.setToolTip("")
        self.downloaded.emit(arch)

    def _on_error(self, message: str, _details: str) -> None:
        self.label_weights_status.setToolTip(message)
        self.failed.emit(f"Downloading the weights failed: {message}")

    @Slot()
    def _refresh(self, *_args) -> None:
        busy = self.runner.busy
        self.setVisible(busy or self.available is not None)
        self.label_weights_status.setText(f"ImageNet weights: {'cached' if self.available else 'not downloaded'}")
        self.label_weights_status.setVisible(not busy)
        self.progress_weights.setVisible(busy)
        self.button_cancel_weights.setVisible(busy)
        self.button_download_weights.setVisible(not busy and self.available is False)
