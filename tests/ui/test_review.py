"""Review area: the overlay draws the right colours at known pixels; sorting and stepping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from segstudio.inference import ReviewItem
from segstudio.ui import overlay

CODES = ("background", "liver", "kidney")
GREY = 100


def make_item(name, dice_mean, index=0):
    image = np.full((64, 64), GREY, np.uint8)
    target = np.zeros((64, 64), np.uint8)
    pred = np.zeros((64, 64), np.uint8)
    target[8:24, 8:24] = 1
    pred[8:24, 8:24] = 1          # true positive (liver)
    pred[40:56, 40:56] = 2        # false positive (kidney where there is none)
    target[40:56, 8:24] = 2       # missed kidney
    return ReviewItem(index, name, image, target, pred, (1.0, 1.0, 0.0), dice_mean)


@pytest.fixture
def review(window, qtbot):
    window.tabs.setCurrentIndex(2)
    panel = window.review_panel
    items = [make_item("good", 0.9, 0), make_item("bad", 0.2, 1), make_item("empty", math.nan, 2),
             make_item("middle", 0.5, 3)]
    panel.set_items(items, CODES)
    panel.slider_opacity.setValue(100)
    qtbot.wait(50)
    return panel


def pixel(panel, x, y):
    """The rendered colour at image pixel (x, y) (its centre), as (r, g, b)."""
    panel.viewbox.autoRange(padding=0)
    img = panel.view_review.grab().toImage()
    p = panel.viewbox.mapViewToDevice(QPointF(x + 0.5, y + 0.5))
    c = img.pixelColor(int(p.x()), int(p.y()))
    return c.red(), c.green(), c.blue()


def close(a, b, tol=6):
    return all(abs(int(u) - int(v)) <= tol for u, v in zip(a, b))


def test_filled_prediction_colours(review):
    assert close(pixel(review, 16, 16), overlay.class_color(1))
    assert close(pixel(review, 48, 48), overlay.class_color(2))
    assert close(pixel(review, 30, 30), (GREY,) * 3)  # background stays the image
    review.slider_opacity.setValue(50)
    expected = tuple(round(0.5 * c + 0.5 * GREY) for c in overlay.class_color(1))
    assert close(pixel(review, 16, 16), expected)


def test_contour_mode_leaves_the_inside_clear(review):
    review.combo_style.setCurrentIndex(1)
    assert close(pixel(review, 16, 16), (GREY,) * 3)
    assert close(pixel(review, 8, 16), overlay.class_color(1))


def test_compare_mode_tp_fp_fn(review):
    review.bool_compare.setChecked(True)
    assert close(pixel(review, 16, 16), overlay.TP_COLOR)
    assert close(pixel(review, 48, 48), overlay.FP_COLOR)
    assert close(pixel(review, 16, 48), overlay.FN_COLOR)
    assert "missed" in review.label_legend.text()


def test_ground_truth_toggle(review):
    review.bool_show_pred.setChecked(False)
    review.bool_show_truth.setChecked(True)
    assert close(pixel(review, 16, 48), overlay.class_color(2))  # true kidney, filled
    assert close(pixel(review, 48, 48), (GREY,) * 3)  # predicted-only kidney is hidden
    review.bool_show_truth.setChecked(False)
    assert close(pixel(review, 16, 16), (GREY,) * 3)


def test_window_level(review):
    review.bool_show_pred.setChecked(False)
    review.slider_levels.setValue((0, 200))
    assert close(pixel(review, 30, 30), (128,) * 3, tol=3)


def test_worst_first_and_arrow_keys(review, qtbot):
    t = review.table_review
    assert [t.item(r, 0).text() for r in range(t.rowCount())] == ["bad", "middle", "good", "empty"]
    assert t.horizontalHeaderItem(2).text() == "liver"
    assert review.items[review.current].name == "bad"
    review.view_review.setFocus()
    qtbot.keyClick(review.view_review, Qt.Key.Key_Down)
    assert review.items[review.current].name == "middle"
    qtbot.keyClick(t, Qt.Key.Key_Down)
    assert review.items[review.current].name == "good"
    t.sortItems(1, Qt.SortOrder.DescendingOrder)
    assert t.item(0, 0).text() in ("good", "empty")


def test_overlay_functions():
    mask = np.zeros((5, 5), np.uint8)
    mask[1:4, 1:4] = 2
    rgba = overlay.colorize(mask)
    assert tuple(rgba[2, 2, :3]) == overlay.class_color(2) and rgba[2, 2, 3] == 255
    assert rgba[0, 0, 3] == 0
    edge = overlay.contour(mask)
    assert edge[1, 1] and not edge[2, 2] and not edge[0, 0]
    blended = overlay.blend(np.zeros((5, 5), np.uint8), rgba, 0.5)
    assert close(blended[2, 2], [c / 2 for c in overlay.class_color(2)], tol=1)


def test_dicom_items_show_modality_units_with_the_training_window(window, qtbot, sample_data):
    """Sample slices are 128 px CT cached at 64 px: the viewer shows HU at 128 px, starting from
    the window training used (one window for the dataset)."""
    window.tabs.setCurrentIndex(2)
    panel = window.review_panel
    panel.dataset = sample_data
    idx = int(sample_data.valid_idx[0])
    item = ReviewItem(idx, sample_data.names[idx], sample_data.images[idx][0], sample_data.masks[idx],
                      sample_data.masks[idx], (1.0, 1.0, 1.0), 1.0)
    panel.set_items([item], CODES)
    image = panel.image_item.image
    assert image.shape == (128, 128) and image.dtype == np.float32
    assert image.min() < -900 and image.max() > 500  # air and bone in HU
    width, level = (float(v) for v in sample_data.window.split("/"))
    assert panel.slider_levels.value() == (math.floor(level - width / 2), math.ceil(level + width / 2))
    assert f"W {width:.0f} L {level:.0f} HU" in panel.label_levels.text()
    overlay_rect = panel.mask_item.mapRectToParent(panel.mask_item.boundingRect())
    assert (overlay_rect.width(), overlay_rect.height()) == (128, 128)  # 64 px overlay stretched
    panel.slider_levels.setValue((-1000, 600))  # the slider spans the image's values
    assert tuple(panel.image_item.levels) == (-1000, 600) and "W 1600 L -200 HU" in panel.label_levels.text()
    assert panel.combo_preset.isEnabled()
    panel.combo_preset.activated.emit(panel.combo_preset.findText("lung"))  # width 1500, level -600
    assert panel.slider_levels.value() == (-1350, 150) and "W 1500 L -600 HU" in panel.label_levels.text()
    panel.dataset = None  # an item without a DICOM source falls back to 8-bit display values
    panel.set_items([make_item("png", 0.5)], CODES)
    assert panel.slider_levels.value() == (0, 255) and panel.image_item.image.shape == (64, 64)
    assert not panel.combo_preset.isEnabled()


def test_a_run_that_fails_to_load_does_not_replace_the_current_one(window, qtbot, tmp_path):
    panel = window.review_panel
    panel.run_dir, panel.predictor = "/runs/a", "model of run a"
    broken = tmp_path / "broken_run"
    broken.mkdir()  # no model.pth
    assert panel.load_run(str(broken))
    assert not panel.load_run(str(tmp_path / "other"))  # busy: refused
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    assert (panel.run_dir, panel.predictor) == ("/runs/a", "model of run a")
    assert "broken_run" not in panel.label_run.text()


def test_review_after_training_reuses_the_dataset_only_if_the_run_used_it(window, sample_data, monkeypatch):
    from dataclasses import replace
    from types import SimpleNamespace

    from segstudio.config import DataConfig, TrainConfig

    dp, calls = window.data_panel, []
    data = DataConfig(images="/i", masks="/m")
    dp.dataset, dp.loaded_key = sample_data, (data, 64)
    monkeypatch.setattr(window.review_panel, "load_run", lambda run_dir, dataset=None: calls.append(dataset))
    final = SimpleNamespace(run_dir="/runs/x")
    window.train_panel.last_config = TrainConfig(data=data, size=64)
    window._on_run_finished(final)
    window.train_panel.last_config = TrainConfig(data=replace(data, valid_pct=0.5), size=64)
    window._on_run_finished(final)
    assert calls[0] is sample_data and calls[1] is None  # None: the review loads the run's own data


def test_position_label_follows_a_resort(review, qtbot):
    review.step(1)  # worst first: bad (0.2), middle (0.5)...
    assert review.label_info.text().startswith("middle") and "(2/4" in review.label_info.text()
    review.table_review.sortItems(0, Qt.SortOrder.AscendingOrder)  # by name: bad, empty, good, middle
    qtbot.waitUntil(lambda: "(4/4" in review.label_info.text(), timeout=2000)
    assert review.label_info.text().startswith("middle")
