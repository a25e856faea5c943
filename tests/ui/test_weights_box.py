"""Train settings: the ImageNet weights status, and downloading them through the TaskRunner."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from PySide6.QtWidgets import QMessageBox

from segstudio.model import weights
from segstudio.ui.panels.train_settings import TrainSettings

PAYLOAD = os.urandom(300_000)
NAME = f"resnet18-{hashlib.sha256(PAYLOAD).hexdigest()[:8]}.pth"
ALL_MISSING = {"resnet18": False, "resnet34": False, "resnet50": False}


class Handler(SimpleHTTPRequestHandler):
    delay = 0.0  # seconds between 16 KB pieces (a slow network)

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        try:
            while piece := source.read(16384):
                outputfile.write(piece)
                time.sleep(self.delay)
        except ConnectionError:  # the client cancelled
            pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local server holding the published file; TORCH_HOME and the weights URL point at tmp_path."""
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / NAME).write_bytes(PAYLOAD)
    monkeypatch.setitem(weights._WEIGHTS, "resnet18", SimpleNamespace(
        url=f"https://download.invalid/models/{NAME}", meta={"_file_size": len(PAYLOAD) / 2**20}))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path / "served")))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("SEGSTUDIO_WEIGHTS_URL", base)
    yield SimpleNamespace(base=base, cache=tmp_path / "torch" / "hub" / "checkpoints")
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


@pytest.fixture
def settings(qtbot):
    s = TrainSettings()
    qtbot.addWidget(s)
    s.resize(460, 760)
    s.show()
    s.combo_arch.setCurrentIndex(s.combo_arch.findData("resnet18"))
    return s


def answer(monkeypatch, button):
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text, *a: asked.append(text) or button)
    return asked


def test_status_and_button_follow_the_cache(settings):
    box = settings.weights_box
    assert box.isHidden()  # not known before the environment is probed
    settings.set_weights_available(ALL_MISSING)
    assert box.isVisible() and box.button_download_weights.isVisible()
    assert box.label_weights_status.text() == "ImageNet weights: not downloaded"
    settings.set_weights_available({**ALL_MISSING, "resnet34": True})
    settings.combo_arch.setCurrentIndex(settings.combo_arch.findData("resnet34"))
    assert box.label_weights_status.text() == "ImageNet weights: cached"
    assert not box.button_download_weights.isVisible()


def test_download_after_confirmation(settings, server, qtbot, monkeypatch):
    box = settings.weights_box
    settings.set_weights_available(ALL_MISSING)
    settings.bool_pretrained.setChecked(True)
    assert not settings.label_pretrained_note.isHidden()
    settings.grab().save("/tmp/weights_box.png")
    asked = answer(monkeypatch, QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(box.downloaded, timeout=30000) as done:
        box.button_download_weights.click()
    qtbot.waitUntil(lambda: not box.runner.busy, timeout=10000)
    assert done.args == ["resnet18"]
    assert f"{server.base}/{NAME}" in asked[0] and "MB" in asked[0]
    assert (server.cache / NAME).read_bytes() == PAYLOAD and os.listdir(server.cache) == [NAME]
    assert settings.weights_available["resnet18"] is True and settings.effective_pretrained()
    assert box.label_weights_status.text() == "ImageNet weights: cached"
    assert not box.button_download_weights.isVisible() and settings.label_pretrained_note.isHidden()
    settings.grab().save("/tmp/weights_box_cached.png")


def test_declined_or_failed_download_keeps_the_button(settings, server, qtbot, monkeypatch):
    box = settings.weights_box
    settings.set_weights_available(ALL_MISSING)
    asked = answer(monkeypatch, QMessageBox.StandardButton.No)
    box.button_download_weights.click()
    assert asked and not box.runner.busy and not server.cache.exists()
    answer(monkeypatch, QMessageBox.StandardButton.Yes)
    monkeypatch.setenv("SEGSTUDIO_WEIGHTS_URL", f"{server.base}/elsewhere")  # 404
    with qtbot.waitSignal(settings.notice, timeout=30000) as notice:
        box.button_download_weights.click()
    qtbot.waitUntil(lambda: not box.runner.busy, timeout=10000)
    assert "HTTP 404" in notice.args[0]
    assert box.button_download_weights.isVisible() and settings.weights_available["resnet18"] is False


def test_cancel_leaves_nothing(settings, server, qtbot, monkeypatch):
    box = settings.weights_box
    settings.set_weights_available(ALL_MISSING)
    answer(monkeypatch, QMessageBox.StandardButton.Yes)
    monkeypatch.setattr(Handler, "delay", 0.05)
    box.button_download_weights.click()
    qtbot.waitUntil(lambda: box.progress_weights.value() >= 0 and "Downloading" in box.progress_weights.format(),
                    timeout=10000)
    assert box.progress_weights.isVisible() and box.button_cancel_weights.isVisible()
    assert not box.button_download_weights.isVisible()
    settings.grab().save("/tmp/weights_box_busy.png")
    box.button_cancel_weights.click()
    qtbot.waitUntil(lambda: not box.runner.busy, timeout=10000)
    assert box.progress_weights.format() == "Cancelled" and not box.progress_weights.isVisible()
    assert box.button_download_weights.isVisible() and os.listdir(server.cache) == []
