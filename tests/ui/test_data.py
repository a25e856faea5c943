"""Data area: dropping folders loads the dataset off the GUI thread; the report and thumbnails."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from segstudio.ui.panels.folders import classify_folders


def drop(widget, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    enter = QDragEnterEvent(QPointF(20, 20).toPoint(), Qt.DropAction.CopyAction, mime,
                            Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)
    return event


@pytest.mark.slow
def test_drop_parent_folder_loads_dataset(window, qtbot, sample_dirs):
    images, masks = sample_dirs
    panel = window.data_panel
    window.tabs.setCurrentIndex(2)
    with qtbot.waitSignal(panel.dataset_loaded, timeout=60000):
        drop(window, [images.parent])
    assert window.tabs.currentIndex() == 0
    assert panel.path_images.text() == str(images) and panel.path_masks.text() == str(masks)
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
    report = panel.report
    assert report.n_pairs == 40 and panel.dataset.images.shape[0] == 40
    assert panel.report_view.table_classes.rowCount() == len(report.classes) == 3
    assert panel.report_view.table_classes.item(1, 1).text() == "liver"
    assert panel.thumbnails.count() == 40
    assert "40 images" in window.label_dataset.text()
    assert panel.button_load.isEnabled() and not panel.button_cancel_load.isEnabled()
    # a DICOM window preset reloads the data with that window
    with qtbot.waitSignal(panel.dataset_loaded, timeout=60000):
        panel.combo_window.setCurrentText("abdomen")
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
    assert panel.dataset.window == "abdomen" and window.state.dataset_key[0].window == "abdomen"


def test_drop_two_folders_in_any_order(window, qtbot, sample_dirs):
    images, masks = sample_dirs
    panel = window.data_panel
    with qtbot.waitSignal(panel.dataset_loaded, timeout=60000):
        drop(window, [masks, images])
    assert panel.path_images.text() == str(images) and panel.path_masks.text() == str(masks)
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)


def test_loading_can_be_cancelled(window, qtbot, sample_dirs):
    images, masks = sample_dirs
    panel = window.data_panel
    panel.set_folders(images, masks)
    with qtbot.waitSignal(panel.runner.busy_changed, timeout=60000, check_params_cb=lambda b: not b):
        panel.load()
        panel.cancel()
    assert panel.progress_load.format() in ("Cancelled", f"Loaded {40} pairs")


def test_load_failure_is_reported_not_fatal(window, qtbot, tmp_path):
    panel = window.data_panel
    (tmp_path / "empty_images").mkdir()
    (tmp_path / "empty_masks").mkdir()
    panel.set_folders(tmp_path / "empty_images", tmp_path / "empty_masks")
    with qtbot.waitSignal(panel.runner.busy_changed, timeout=30000, check_params_cb=lambda b: not b):
        panel.load()
    assert panel.progress_load.format() == "Loading failed"
    assert "Could not load" in panel.report_view.label_summary.toPlainText()
    assert "Loading failed" in window.train_panel.text_log.toPlainText()


def _load(panel, qtbot, images, masks):
    panel.set_folders(images, masks)
    with qtbot.waitSignal(panel.runner.busy_changed, timeout=60000, check_params_cb=lambda b: not b):
        panel.load()


def test_a_failed_load_clears_the_previous_dataset(window, qtbot, sample_dirs, tmp_path):
    panel = window.data_panel
    _load(panel, qtbot, *sample_dirs)
    assert panel.dataset is not None and panel.thumbnails.count() > 0
    _load(panel, qtbot, tmp_path / "missing", sample_dirs[1])
    assert panel.dataset is None and panel.thumbnails.count() == 0
    assert panel.report_view.table_classes.rowCount() == 0 and window.label_dataset.text() == "No dataset"


def test_images_without_masks_list_every_file_in_the_problems(window, qtbot, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(images / f"case{i}.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(masks / "other.png")
    panel = window.data_panel
    _load(panel, qtbot, images, masks)
    assert panel.progress_load.format() == "Loading failed" and panel.dataset is None
    text = panel.report_view.text_problems.toPlainText()
    assert "other.png: no matching image" in text and "case0" not in text  # unlabelled: no problem
    assert "3 image(s) without a mask" in panel.report_view.label_summary.toPlainText()
    assert panel.report_view.label_problems.text() == "Problems (1)"


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_classify_folders_by_name_and_values(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    label = (rng.random((32, 32)) > 0.5).astype(np.uint8) * 255
    _png(tmp_path / "a" / "x1.png", photo)
    _png(tmp_path / "b" / "x1.png", label)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert classify_folders([b, a]) == (a, b)  # told apart by their values
    assert classify_folders([b]) == (None, b)
    assert classify_folders([a]) == (a, None)
    _png(tmp_path / "pair" / "imgs" / "x.png", photo)
    _png(tmp_path / "pair" / "labels" / "x.png", label)
    assert classify_folders([tmp_path / "pair"]) == (str(tmp_path / "pair" / "imgs"),
                                                     str(tmp_path / "pair" / "labels"))
    assert classify_folders([tmp_path / "a" / "x1.png"]) == (a, None)  # a file stands for its folder
    assert classify_folders([tmp_path / "missing"]) == (None, None)


@pytest.mark.slow
def test_open_sample_dataset_action(window, qtbot):
    panel = window.data_panel
    with qtbot.waitSignal(panel.dataset_loaded, timeout=120000):
        window.action_open_sample.trigger()
    qtbot.waitUntil(lambda: not panel.busy and not window.tasks.busy, timeout=10000)
    assert panel.report.n_pairs == 40 and len(panel.dataset.codes) == 3
    settings = window.train_panel.settings.config()
    assert (settings.size, settings.epochs, settings.bs) == (128, 8, 4)  # the demo settings
    assert panel.dataset.size == 128


def test_a_dropped_dataset_root_of_scans_loads_as_scans(window, qtbot, tmp_path):
    from segstudio.data.sample_volumes import sample_volumes

    images, _ = sample_volumes(tmp_path / "volumes")
    panel = window.data_panel
    panel.set_folders("/old/images", "/old/masks")  # an earlier 2-D dataset's folders
    panel.combo_axis.setCurrentText("axial")
    with qtbot.waitSignal(panel.dataset_loaded, timeout=60000):
        drop(window, [images.parent])
    qtbot.waitUntil(lambda: not panel.busy, timeout=10000)
    data = panel.dataset
    assert data.volumetric and len(data.volumes) == 6 and panel.path_masks.text().endswith("labelsTr")
    assert panel.thumbnails.count() == 6  # one per scan
    assert "6 scans" in window.label_dataset.text()
    assert "labelled scans (decathlon layout)" in panel.report_view.label_summary.toPlainText()


def test_one_folder_holding_images_and_masks_typed_into_the_images_field(window, qtbot, tmp_path):
    """As the README and the Data area's tip promise: the Masks field left empty."""
    root = tmp_path / "my data"
    for i in range(6):
        image = np.full((16, 20), 30 + 20 * i, np.uint8)
        mask = np.zeros((16, 20), np.uint8)
        mask[4:10, 5:12] = 1
        _png(root / "images" / f"case {i}.png", image)
        _png(root / "masks" / f"case {i}.png", mask)
    panel = window.data_panel
    panel.path_masks.setText("")
    qtbot.keyClicks(panel.path_images, str(root))  # typed, then Load clicked (no Return)
    with qtbot.waitSignal(panel.runner.busy_changed, timeout=60000, check_params_cb=lambda b: not b):
        qtbot.mouseClick(panel.button_load, Qt.MouseButton.LeftButton)
    assert window.state.data_config.images == str(root) and window.state.data_config.masks == ""
    assert panel.dataset is not None, panel.report_view.label_summary.toPlainText()
    assert panel.report.n_pairs == 6 and panel.thumbnails.count() == 6
    summary = panel.report_view.label_summary.toPlainText()
    assert f"masks from {root / 'masks'}" in summary  # the folders used are shown
