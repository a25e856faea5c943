"""GUI test setup: offscreen Qt, QSettings isolated per test, and no QThread may outlive a test."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("PYTEST_QT_API", "pyside6")

import pytest  # noqa: E402
import shiboken6  # noqa: E402
from PySide6.QtCore import QSettings, QThread  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path):
    """QSettings write into this test's tmp_path, never into the user's real settings."""
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield tmp_path / "settings"


@pytest.fixture(autouse=True)
def no_dangling_threads(qapp, monkeypatch):
    """Fail a test that leaves a QThread running (napari does the same)."""
    started: list[QThread] = []
    original = QThread.start

    def tracking_start(self, *args):
        started.append(self)
        return original(self, *args)

    monkeypatch.setattr(QThread, "start", tracking_start)
    yield
    running = [t for t in started if shiboken6.isValid(t) and t.isRunning()]
    if running:
        names = [t.objectName() or type(t).__name__ for t in running]
        for t in running:  # clean up so later tests are not affected (cooperatively, never terminate)
            if hasattr(t, "stop"):
                t.stop()
            t.requestInterruption()
            t.wait(60000)
        pytest.fail(f"test left QThreads running: {names}")


@pytest.fixture
def runs_dir(tmp_path):
    path = tmp_path / "runs"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def styled_app(qapp):
    """The QApplication with the app's look, applied once: applying the stylesheet again restyles
    every widget still alive (seconds per test, growing with the tests run)."""
    from segstudio.ui.app import make_app

    return make_app()


@pytest.fixture
def window(qtbot, runs_dir, styled_app):
    """The main window, styled like the app, with runs going to tmp_path; closed after the test."""
    from segstudio.ui.main_window import MainWindow

    w = MainWindow(probe=False)
    w.train_panel.settings.path_out_dir.setText(str(runs_dir))
    qtbot.addWidget(w)
    w.resize(1320, 860)
    w.show()
    yield w
    w.train_panel.stop()
    w.train_panel.wait()
    w.data_panel.wait()
    w.review_panel.wait()
    w.tasks.wait()
    w.probe.wait()


def small_train_settings(window, epochs=1, size=32, bs=8):
    """Shrink the run so it takes seconds on a CPU: resnet18, random init, tiny images."""
    s = window.train_panel.settings
    s.combo_arch.setCurrentIndex(s.combo_arch.findData("resnet18"))
    s.bool_pretrained.setChecked(False)
    s.value_size.setValue(size)
    s.value_bs.setValue(bs)
    s.value_epochs.setValue(epochs)
    s.value_preview_count.setValue(3)
    s.bool_augment.setChecked(False)
    s.combo_device.setCurrentIndex(s.combo_device.findData("cpu"))
    s.combo_input_mode.setCurrentIndex(s.combo_input_mode.findData("resize"))  # 128 px images at 32: no patches
