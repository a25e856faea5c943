"""Correcting masks in the review: strokes with the mouse, undo/redo keys, saving beside the masks,
predicting the unlabelled images most uncertain first and accepting one, and closing with
unsaved corrections."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from segstudio.config import DataConfig
from segstudio.data import load_dataset
from segstudio.data.corrections import corrections_dir
from segstudio.ui import overlay


@pytest.fixture
def corrected_review(window, qtbot, trained_run, sample_dirs, tmp_path):
    """The review of the trained run on a copy of the sample, with one image that has no mask."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    shutil.copytree(sample_dirs[0], images)
    shutil.copytree(sample_dirs[1], masks)
    first = sorted(images.iterdir())[0]
    shutil.copy(first, images / f"unlabelled{first.suffix}")
    data, report = load_dataset(DataConfig(str(images), str(masks)), 64)
    assert report.n_unlabelled == 1
    window.tabs.setCurrentIndex(2)
    panel = window.review_panel
    panel.load_run(trained_run[0].run_dir, data)
    qtbot.waitUntil(lambda: not panel.busy and panel.run_dir == trained_run[0].run_dir, timeout=120000)
    panel.viewer.slider_opacity.setValue(100)
    return panel, masks


def _loaded(panel, qtbot):
    qtbot.waitUntil(lambda: panel.model.mask is not None and panel.viewer.mask is not None, timeout=60000)
    return panel.model.mask


def _mouse(panel, kind, x, y, button=Qt.MouseButton.LeftButton):
    v = panel.viewer
    p = v.viewbox.mapViewToDevice(QPointF(x + 0.5, y + 0.5))
    buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else button
    event = QMouseEvent(kind, p, v.view_review.viewport().mapToGlobal(p), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(v.view_review.viewport(), event)


def stroke(panel, points):
    _mouse(panel, QEvent.Type.MouseButtonPress, *points[0])
    for x, y in points[1:]:
        _mouse(panel, QEvent.Type.MouseMove, x, y)
    _mouse(panel, QEvent.Type.MouseButtonRelease, *points[-1])


def pixel(panel, x, y):
    v = panel.viewer
    img = v.view_review.grab().toImage()
    p = v.viewbox.mapViewToDevice(QPointF(x + 0.5, y + 0.5))
    c = img.pixelColor(int(p.x()), int(p.y()))
    return c.red(), c.green(), c.blue()


def test_paint_undo_redo_and_save_beside_the_masks(corrected_review, qtbot, window):
    panel, masks = corrected_review
    mask = _loaded(panel, qtbot)
    h, w = mask.labels.shape[1:]
    assert (h, w) == panel.dataset.volumes[panel.model.item.index].shape[1:]  # the original size, not 64 px
    before = mask.labels.copy()
    panel.tools.button_edit.setChecked(True)
    panel.model.set_tool("brush", radius=2, label=1)
    panel.viewer.viewbox.autoRange(padding=0)
    stroke(panel, [(2, 3), (w // 2, 3), (w - 3, 3)])
    assert mask.labels[0, 3, 2:w - 3].all() and not before[0, 3, 2:w - 3].all()
    drawn = pixel(panel, w // 2, 3)
    assert all(abs(a - b) <= 8 for a, b in zip(drawn, overlay.class_color(1)))
    assert panel.tools.label_unsaved.text() == "1 unsaved" and panel.tools.button_undo.isEnabled()

    panel.viewer.view_review.setFocus()
    qtbot.keyClick(panel.viewer.view_review, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(mask.labels, before)
    qtbot.keyClick(panel.viewer.view_review, Qt.Key.Key_Z,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert mask.labels[0, 3, 2:w - 3].all()
    qtbot.keyClick(panel.viewer.view_review, Qt.Key.Key_BracketRight)
    assert panel.model.tool.radius == 3 and panel.tools.spin_radius.value() == 3

    original = {p.name: p.read_bytes() for p in masks.iterdir()}
    panel.tools.button_save.click()
    qtbot.waitUntil(lambda: not panel.save_runner.busy and not panel.model.unsaved(), timeout=30000)
    saved = list(corrections_dir(masks).glob("*.png"))
    assert len(saved) == 1 and {p.name: p.read_bytes() for p in masks.iterdir()} == original
    assert window.state.dataset_key is None  # the next run reads the corrections
    assert panel.table_review.item(panel.table_review.currentRow(), 0).text().endswith("✎")


def test_unlabelled_images_ranked_accepted_and_saved(corrected_review, qtbot):
    panel, masks = corrected_review
    assert panel.button_unlabelled.isEnabled() and panel.button_unlabelled.text() == "Predict unlabelled (1)"
    panel.button_unlabelled.click()
    qtbot.waitUntil(lambda: not panel.busy and panel.table_review.horizontalHeaderItem(1) is not None
                    and panel.table_review.horizontalHeaderItem(1).text() == "Uncertainty", timeout=60000)
    assert panel.table_review.rowCount() == 1 and panel.items[0].target is None
    mask = _loaded(panel, qtbot)
    assert mask.started_from == "prediction" and mask.truth is None and not mask.unsaved
    panel.viewer.bool_uncertainty.setChecked(True)  # the entropy map draws over the image
    assert panel.viewer.uncertainty_plane() is not None and panel.viewer.uncertainty_plane().shape == mask.labels.shape[1:]
    panel.tools.button_edit.setChecked(True)
    mask.labels[:] = 0  # the user cleared it...
    panel.model.accept_prediction()  # ...and took the prediction after all
    assert np.array_equal(mask.labels, mask.pred) and mask.unsaved
    assert panel.save_corrections()
    qtbot.waitUntil(lambda: not panel.save_runner.busy, timeout=30000)
    saved = corrections_dir(masks) / "unlabelled.png"
    assert saved.is_file()
    data, report = load_dataset(DataConfig(str(masks.parent / "images"), str(masks)), 32)
    assert report.n_unlabelled == 0 and report.n_corrected == 1


def test_closing_with_unsaved_corrections_asks_and_the_model_exports(corrected_review, qtbot, window, monkeypatch):
    panel, masks = corrected_review
    mask = _loaded(panel, qtbot)
    panel.tools.button_edit.setChecked(True)
    panel.model.set_tool("fill", label=1)
    stroke(panel, [(1, 1)])  # the background, up to the borders: said first
    assert not mask.unsaved and "would cover" in window.state.message.text
    stroke(panel, [(2, 1)])  # a second click in that region fills it
    assert mask.unsaved
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Cancel)
    assert not window.confirm_unsaved_corrections() and mask.unsaved
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Save)
    assert window.confirm_unsaved_corrections() and not panel.model.unsaved()
    assert len(list(corrections_dir(masks).glob("*.png"))) == 1
    out = masks.parent / "exported.onnx"  # and the model exported from the review
    assert panel.export_model(str(out))
    qtbot.waitUntil(lambda: not panel.busy, timeout=120000)
    assert out.is_file() and "match PyTorch" in window.state.message.text
