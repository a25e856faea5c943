"""The Review's scans in the three-plane viewer, mixed into ReviewPanel: a scan item (a validation
scan or a predicted one) opens in scan_viewer.ScanViewer at full resolution, loaded in the task
runner (progress and cancel; the latest selection wins); 2-D items stay in the ReviewViewer."""

from __future__ import annotations

from PySide6.QtWidgets import QStackedWidget

from segstudio.editing.scan_loading import load_scan_data
from segstudio.editing.store import item_key
from segstudio.ui.panels.scan_viewer import ScanViewer
from segstudio.ui.tasks import TaskRunner


class ScanMixin:
    """Needs the panel's model, viewer, tools, predictor, dataset, post, _generation and _editable."""

    def _build_scan_viewer(self) -> QStackedWidget:
        """The viewer stack (2-D review, three-plane scan viewer) and the scan loader."""
        self.scan_viewer = ScanViewer(self.model)
        self.tools.editing_changed.connect(self.scan_viewer.set_editing)
        self.scan_runner = TaskRunner(self, "scan_load", self.scan_viewer.progress)
        self.scan_runner.busy_changed.connect(self.scan_viewer._on_busy)
        self.scan_runner.busy_changed.connect(lambda busy: busy or self._load_wanted_scan())
        self.scan_viewer.button_cancel.clicked.connect(self.scan_runner.cancel)
        self._wanted_scan = None
        self._scan_key = ""  # the item whose scan is on screen
        self.viewer_stack = QStackedWidget(objectName="stack_review_viewer")
        self.viewer_stack.addWidget(self.viewer)
        self.viewer_stack.addWidget(self.scan_viewer)
        return self.viewer_stack

    @property
    def showing_scan(self) -> bool:
        return self.viewer_stack.currentWidget() is self.scan_viewer

    def _show_scan(self, item) -> None:
        """Open a scan item in the three-plane viewer (loaded in a worker unless on screen)."""
        self.viewer_stack.setCurrentWidget(self.scan_viewer)
        self.tools.set_scan_mode(True)
        if self.scan_viewer.data is not None and self._scan_key == item_key(item):
            return
        self._scan_key = ""
        self.scan_viewer.show_message(f"Opening {item.name} at full resolution…")
        self._wanted_scan = item
        if self.scan_runner.busy:
            self.scan_runner.cancel()  # the latest choice wins: it loads once this one stopped
        else:
            self._load_wanted_scan()

    def _show_flat(self) -> None:
        self.viewer_stack.setCurrentWidget(self.viewer)
        self.tools.set_scan_mode(False)

    def _load_wanted_scan(self) -> None:
        item, self._wanted_scan = self._wanted_scan, None
        if item is None or self.scan_runner.busy:
            self._wanted_scan = self._wanted_scan or item
            return
        generation = self._generation
        ctx = self.model.ctx if self._editable(item) else None
        self.scan_runner.start(load_scan_data, item, ctx, self.predictor, label=f"Opening {item.name}…",
                               on_done=lambda data: self._on_scan(item, data, generation),
                               on_error=lambda m, d: self._on_scan_error(item, m, generation))

    def _on_scan(self, item, data, generation: int) -> None:
        if generation == self._generation and item is self.model.item:
            self._scan_key = item_key(item)
            self.scan_viewer.set_data(data)
            self.tools.update_state(self.save_runner.busy)

    def _on_scan_error(self, item, message: str, generation: int) -> None:
        if generation == self._generation and item is self.model.item:
            self.scan_viewer.show_message(f"{item.name} cannot be shown: {message}")
            self.post("warning", f"{item.name} cannot be shown: {message}")
