"""GUI entry point: creates the one QApplication, applies the look, opens the main window."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

import segstudio
from segstudio.resource_paths import APP_ID
from segstudio.ui import resources
from segstudio.ui.settings import APP, ORG


def make_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (created once), with name, icon, Fusion style and the stylesheet."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    app.setApplicationVersion(segstudio.__version__)
    app.setDesktopFileName(APP_ID)  # Wayland docks match the window to the installed menu entry
    app.setWindowIcon(resources.app_icon())
    app.setStyle("Fusion")
    app.setStyleSheet(resources.stylesheet())
    return app


def run_app(argv: list[str] | None = None, demo: bool = False, images: str | None = None,
            masks: str | None = None, demo_volumes: bool = False) -> int:
    """Open the main window and run the event loop; returns the exit code.

    demo=True opens with the built-in sample dataset, demo_volumes=True with the sample of 3-D
    scans; images/masks preset (and load) folders.
    """
    app = make_app(argv)
    from segstudio.ui.main_window import MainWindow

    window = MainWindow()
    window.show()
    if demo:
        window.open_sample()
    elif demo_volumes:
        window.open_volume_sample()
    elif images or masks:
        window.data_panel.set_folders(images, masks, load=bool(images and masks))
    return app.exec()
