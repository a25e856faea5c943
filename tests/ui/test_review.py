"""Review area: the overlay draws the right colours at known pixels; sorting and stepping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QLabel

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
    target[8:24, 40:56] = 2       # kidney predicted as liver: wrong class
    pred[8:24, 40:56] = 1
    return ReviewItem(index, name, image, target, pred, (1.0, 1.0, 0.0), dice_mean)


@pytest.fixture
def review(window, qtbot):
    window.tabs.setCurrentIndex(2)
    panel = window.review_panel
    items = [make_item("good", 0.9, 0), make_item("bad", 0.2, 1), make_item("empty", math.nan, 2),
             make_item("middle", 0.5, 3)]
    panel.set_items(items, CODES)
    panel.viewer.slider_opacity.setValue(100)
    qtbot.wait(50)
    return panel


def pixel(panel, x, y):
    """The rendered colour at image pixel (x, y) (its centre), as (r, g, b)."""
    v = panel.viewer
    v.viewbox.autoRange(padding=0)
    img = v.view_review.grab().toImage()
    p = v.viewbox.mapViewToDevice(QPointF(x + 0.5, y + 0.5))
    c = img.pixelColor(int(p.x()), int(p.y()))
    return c.red(), c.green(), c.blue()


def close(a, b, tol=6):
    return all(abs(int(u) - int(v)) <= tol for u, v in zip(a, b))


def test_filled_prediction_colours(review):
    assert close(pixel(review, 16, 16), overlay.class_color(1))
    assert close(pixel(review, 48, 48), overlay.class_color(2))
    assert close(pixel(review, 30, 30), (GREY,) * 3)  # background stays the image
    review.viewer.slider_opacity.setValue(50)
    expected = tuple(round(0.5 * c + 0.5 * GREY) for c in overlay.class_color(1))
    assert close(pixel(review, 16, 16), expected)


def test_viewer_and_exported_masks_share_one_palette():
    from segstudio.palette import colourise

    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(colourise(mask, 12), overlay.colorize(mask)[..., :3])


def test_contour_mode_leaves_the_inside_clear(review):
    review.viewer.combo_style.setCurrentIndex(1)
    assert close(pixel(review, 16, 16), (GREY,) * 3)
    assert close(pixel(review, 8, 16), overlay.class_color(1))


def test_compare_mode_tp_fp_fn_and_wrong_class(review):
    from segstudio.palette import COMPARE, CORRECT, FALSE_POSITIVE, MISSED, WRONG_CLASS

    review.viewer.bool_compare.setChecked(True)
    assert close(pixel(review, 16, 16), COMPARE[CORRECT][1])
    assert close(pixel(review, 48, 48), COMPARE[FALSE_POSITIVE][1])
    assert close(pixel(review, 16, 48), COMPARE[MISSED][1])
    assert close(pixel(review, 48, 16), COMPARE[WRONG_CLASS][1])  # true kidney predicted as liver
    legend = review.viewer.label_legend.text()
    assert "missed" in legend and "wrong class" in legend and "wrong class" in review.viewer.bool_compare.toolTip()


def test_ground_truth_toggle(review):
    v = review.viewer
    v.bool_show_pred.setChecked(False)
    v.bool_show_truth.setChecked(True)
    assert close(pixel(review, 16, 48), overlay.class_color(2))  # true kidney, filled
    assert close(pixel(review, 48, 48), (GREY,) * 3)  # predicted-only kidney is hidden
    v.bool_show_truth.setChecked(False)
    assert close(pixel(review, 16, 16), (GREY,) * 3)


def test_window_level(review):
    review.viewer.bool_show_pred.setChecked(False)
    review.viewer.slider_levels.setValue((0, 200))
    assert close(pixel(review, 30, 30), (128,) * 3, tol=3)


def test_readout_names_the_value_and_classes_under_the_cursor(review):
    review.step(1)  # "middle": the liver square at 8..24 is predicted and true
    assert review.viewer.readout(QPointF(16.5, 16.5)) == (
        f"x 16, y 16 · {GREY} · prediction liver · truth liver")
    assert "prediction background · truth kidney" in review.viewer.readout(QPointF(16.5, 48.5))
    assert review.viewer.readout(QPointF(-3, 5)) == ""  # outside the image


def test_worst_first_and_arrow_keys(review, qtbot):
    t = review.table_review
    assert [t.item(r, 0).text() for r in range(t.rowCount())] == ["bad", "middle", "good", "empty"]
    assert t.horizontalHeaderItem(2).text() == "liver"
    assert review.items[review.current].name == "bad"
    view = review.viewer.view_review
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert review.items[review.current].name == "middle"
    qtbot.keyClick(t, Qt.Key.Key_Down)
    assert review.items[review.current].name == "good"
    t.sortItems(1, Qt.SortOrder.DescendingOrder)
    assert t.item(0, 0).text() in ("good", "empty")


def test_a_legend_of_many_classes_does_not_widen_the_window(window, qtbot):
    width = window.width()
    codes = ("background",) + tuple(f"a rather long class name {i}" for i in range(150))
    window.tabs.setCurrentIndex(2)
    window.review_panel.set_items([make_item("x", 0.5)], codes)
    qtbot.wait(50)
    assert window.width() == width and window.minimumSizeHint().width() < 1400
    assert "+142 more" in window.review_panel.viewer.label_legend.text()


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


def test_dicom_items_show_modality_units_decoded_off_the_gui_thread(window, qtbot, sample_data):
    """Sample slices are 128 px CT cached at 64 px: the viewer shows the 8-bit slice at once, then
    HU at 128 px from a worker, starting from the window training used."""
    from types import SimpleNamespace

    window.tabs.setCurrentIndex(2)
    panel, viewer = window.review_panel, window.review_panel.viewer
    panel.predictor = SimpleNamespace(window=sample_data.window, codes=list(CODES))
    idx = int(sample_data.valid_idx[0])
    item = ReviewItem(idx, sample_data.names[idx], sample_data.images[idx][0], sample_data.masks[idx],
                      sample_data.masks[idx], (1.0, 1.0, 1.0), 1.0, sample_data.sources[idx], 0)
    panel.set_items([item], CODES)
    assert viewer.image_item.image.shape == (64, 64)  # the cached slice until the decode arrives
    qtbot.waitUntil(lambda: viewer.frame is not None, timeout=20000)
    image = viewer.image_item.image
    assert image.shape == (128, 128) and image.dtype == np.float32
    assert image.min() < -900 and image.max() > 500  # air and bone in HU
    width, level = (float(v) for v in sample_data.window.split("/"))
    lo, hi = math.floor(level - width / 2), math.ceil(level + width / 2)
    assert viewer.slider_levels.value() == (lo, hi)
    assert f"W {hi - lo} L {(lo + hi) / 2:.0f} HU" in viewer.label_levels.text()
    assert viewer.combo_preset.currentText() == "Custom"
    overlay_rect = viewer.mask_item.mapRectToParent(viewer.mask_item.boundingRect())
    assert (overlay_rect.width(), overlay_rect.height()) == (128, 128)  # 64 px overlay stretched
    assert viewer.readout(QPointF(1.5, 1.5)).split(" · ")[1].endswith("HU")
    viewer.slider_levels.setValue((-1000, 600))  # the slider spans the image's values
    assert tuple(viewer.image_item.levels) == (-1000, 600) and "W 1600 L -200 HU" in viewer.label_levels.text()
    assert viewer.combo_preset.isEnabled()
    viewer.combo_preset.activated.emit(viewer.combo_preset.findText("lung"))  # width 1500, level -600
    assert viewer.slider_levels.value() == (-1350, 150) and "W 1500 L -600 HU" in viewer.label_levels.text()
    assert viewer.combo_preset.currentText() == "lung"  # the box shows the active preset
    panel.set_items([make_item("png", 0.5)], CODES)  # no DICOM source: 8-bit display values
    assert viewer.slider_levels.value() == (0, 255) and viewer.image_item.image.shape == (64, 64)
    assert not viewer.combo_preset.isEnabled()


def test_a_run_that_fails_to_load_does_not_replace_the_current_one(window, qtbot, tmp_path):
    panel = window.review_panel
    panel.run_dir, panel.predictor = "/runs/a", "model of run a"
    broken = tmp_path / "broken_run"
    broken.mkdir()  # no model.pth
    other = tmp_path / "other_run"
    other.mkdir()
    assert panel.load_run(str(broken))
    assert panel.load_run(str(other))  # while busy: the first stops, this one loads after it
    qtbot.waitUntil(lambda: not panel.busy and panel._pending_run is None, timeout=30000)
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)
    assert (panel.run_dir, panel.predictor) == ("/runs/a", "model of run a")
    assert "broken_run" not in panel.label_run.text()
    banner = window.review_panel.findChild(QLabel, "label_message_review").text()
    assert "other_run holds no trained model" in banner  # the last request was the one carried out


def test_review_after_training_reuses_the_dataset_only_if_the_run_used_it(window, sample_data, monkeypatch):
    from dataclasses import replace

    from segstudio.config import DataConfig, TrainConfig
    from segstudio.ui.state import RunRef

    calls = []
    data = DataConfig(images="/i", masks="/m")
    window.state.set_dataset(sample_data, None, (data, 64))
    monkeypatch.setattr(window.review_panel, "load_run",
                        lambda run_dir, dataset=None, config=None: calls.append(dataset))
    window.state.run = RunRef("/runs/x", TrainConfig(data=data, size=64))
    window.state.run = RunRef("/runs/y", TrainConfig(data=replace(data, valid_pct=0.5), size=64))
    assert calls[0] is sample_data and calls[1] is None  # None: the review loads the run's own data


def test_position_label_follows_a_resort(review, qtbot):
    info = review.viewer.label_info
    review.step(1)  # worst first: bad (0.2), middle (0.5)...
    assert info.text().startswith("middle") and "(2/4" in info.text()
    review.table_review.sortItems(0, Qt.SortOrder.AscendingOrder)  # by name: bad, empty, good, middle
    qtbot.waitUntil(lambda: "(4/4" in info.text(), timeout=2000)
    assert info.text().startswith("middle")


def make_scan(name="scan", dice_mean=0.7):
    """A 5-slice scan whose slice 3 has the largest error (a missed kidney)."""
    image = np.full((5, 64, 64), GREY, np.uint8)
    target = np.zeros((5, 64, 64), np.uint8)
    target[1:4, 8:24, 8:24] = 1
    pred = target.copy()
    target[3, 40:60, 40:60] = 2  # missed
    pred[2, 30:34, 30:34] = 1  # a small false positive
    errors = (pred != target).reshape(5, -1).sum(axis=1)
    return ReviewItem(0, name, image, target, pred, (1.0, 0.9, 0.0), dice_mean, "scan.nii.gz", 0,
                      (("liver", 1.5, 1.4), ("kidney", 0.0, 0.8)), errors)


def test_a_scan_steps_through_its_slices(window, qtbot):
    window.tabs.setCurrentIndex(2)
    panel, viewer = window.review_panel, window.review_panel.viewer
    panel.set_items([make_scan("a", 0.6), make_scan("b", 0.8)], CODES)
    t = panel.table_review
    assert [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())] == [
        "Scan", "Dice", "liver", "kidney", "liver mL", "kidney mL"]
    assert not viewer.slider_slice.isHidden() and viewer.slider_slice.maximum() == 4
    assert viewer.slice == 3  # opens where the most foreground is
    viewer.view_review.setFocus()
    qtbot.keyClick(viewer.view_review, Qt.Key.Key_Left)
    assert viewer.slice == 2 and viewer.label_slice.text() == "3/5"
    assert "prediction liver" in viewer.readout(QPointF(31.5, 31.5))  # the false positive on slice 3/5
    viewer.next_worst_slice()
    assert viewer.slice == 3  # the missed kidney: the largest error
    viewer.next_worst_slice()
    assert viewer.slice == 2
    assert "liver: 1.5 mL predicted, 1.4 mL true" in viewer.label_info.toolTip()
    qtbot.keyClick(viewer.view_review, Qt.Key.Key_Down)  # up/down: the next scan
    assert panel.items[panel.current].name == "b"
    panel.set_items([make_item("png", 0.5)], CODES)
    assert viewer.slider_slice.isHidden()


def test_left_right_step_slices_wherever_the_viewer_area_has_the_focus(window, qtbot):
    window.tabs.setCurrentIndex(2)
    panel, viewer = window.review_panel, window.review_panel.viewer
    panel.set_items([make_scan("a", 0.6), make_scan("b", 0.8)], CODES)
    t = panel.table_review
    assert viewer.slice == 3
    t.setFocus()
    qtbot.keyClick(t, Qt.Key.Key_Left)  # the table's focus: a slice, not the table scrolled sideways
    assert viewer.slice == 2 and t.currentColumn() == 0 and t.horizontalScrollBar().value() == 0
    qtbot.keyClick(viewer.bool_compare, Qt.Key.Key_Right)  # a checkbox of the viewer
    assert viewer.slice == 3
    qtbot.keyClick(panel.tools.button_edit, Qt.Key.Key_Left)  # the correction tools above it
    assert viewer.slice == 2
    qtbot.keyClick(t, Qt.Key.Key_Down)  # up/down in the table: still the next scan
    assert panel.items[panel.current].name == "b"
    panel.set_items([make_item("x", 0.2, 0), make_item("y", 0.4, 1)], CODES)  # 2-D: the next image
    qtbot.keyClick(t, Qt.Key.Key_Right)
    assert panel.items[panel.current].name == "y" and t.currentColumn() == 0


def test_the_cursor_readout_is_cleared_when_the_item_or_the_run_changes(review):
    v = review.viewer

    def hover(x, y):
        v._on_mouse(v.viewbox.mapViewToScene(QPointF(x, y)))
        return v.label_readout.text()

    assert "prediction liver" in hover(16.5, 16.5)
    review.step(1)
    assert v.label_readout.text() == ""
    assert "prediction liver" in hover(16.5, 16.5)
    review.set_items([make_item("another run", 0.1)], CODES)
    assert v.label_readout.text() == ""


def _open_fake_run(panel, run_dir, items):
    """What the review worker hands back for a run: a RunReview (predictor, dataset, items)."""
    from types import SimpleNamespace

    from segstudio.reporting.run_review import RunReview

    panel._on_review(run_dir, None, RunReview(SimpleNamespace(codes=list(CODES), window=""), None, items))


def test_opening_a_run_shows_its_folder_size_and_leaves_correcting(window, tmp_path):
    window.tabs.setCurrentIndex(2)
    panel = window.review_panel
    run = tmp_path / "runs" / "20250101-120000"
    (run / "previews").mkdir(parents=True)
    (run / "model.pth").write_bytes(bytes(2_500_000))
    (run / "previews" / "e1.png").write_bytes(bytes(500_000))
    panel.tools.button_edit.setChecked(True)
    _open_fake_run(panel, str(run), [make_item("a", 0.5)])
    assert "20250101-120000</b> · run folder 3.0 MB" in panel.label_run.text()
    assert not panel.tools.button_edit.isChecked() and not panel.viewer.editing
    panel.tools.button_edit.setChecked(True)
    _open_fake_run(panel, str(run), [make_item("a", 0.5)])  # the same run opened again
    assert not panel.tools.button_edit.isChecked()


def test_the_correct_toggle_is_unmistakable_when_on(review):
    button = review.tools.button_edit

    def background():
        image = button.grab().toImage()
        return image.pixelColor(image.width() - 4, image.height() // 2)

    off = background()
    button.setChecked(True)
    on = background()
    assert button.text() == "✎ Correcting" and button.minimumWidth() >= button.fontMetrics().horizontalAdvance(
        "✎ Correcting")
    assert on.red() > 180 and on.blue() < 100 and off.blue() > 150  # orange, where it was pale
    assert "border" in review.viewer.view_review.styleSheet()  # the image is framed in that colour
    button.setChecked(False)
    assert review.viewer.view_review.styleSheet() == ""


def test_review_columns_fit_parent_dice_each_class_and_millilitres(window, qtbot):
    from dataclasses import replace

    window.tabs.setCurrentIndex(2)
    panel = window.review_panel
    scans = [replace(make_scan(f"case_{k:03d}", 0.5 + k / 10), parent_dice=0.4) for k in range(3)]
    panel.set_items(scans, CODES)
    qtbot.wait(50)
    t = panel.table_review
    heads = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    assert heads == ["Scan", "Dice", "Parent Dice", "liver", "kidney", "liver mL", "kidney mL"]
    fm = t.horizontalHeader().fontMetrics()
    for c, head in enumerate(heads):
        shown = t.columnWidth(c)
        assert shown >= fm.horizontalAdvance(head) and shown >= t.sizeHintForColumn(c), head
    assert panel.split.sizes()[0] > 400  # the list got wider to show them


def test_predict_folder_offers_the_suggested_folder_and_creates_it(window, qtbot, tmp_path, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QDialogButtonBox

    from segstudio.ui.panels.review_predict import OutputFolderDialog

    panel = window.review_panel
    panel.run_dir = str(tmp_path / "run")
    images = tmp_path / "new scans"
    images.mkdir()
    (images / "mine.txt").write_text("a file of the user's")
    started = []
    monkeypatch.setattr(panel.runner, "start", lambda fn, *args, **kw: started.append(args) or True)
    seen = []

    def answer(ok: bool):
        dialog = QApplication.activeModalWidget()
        if dialog is None:
            return QTimer.singleShot(10, lambda: answer(ok))
        if not isinstance(dialog, OutputFolderDialog):
            return dialog.reject()
        button = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
        seen.append((dialog.path_out.text(), button.isEnabled(), dialog.label_note.text()))
        (button.click if ok else dialog.reject)()

    QTimer.singleShot(0, lambda: answer(False))  # cancelled: nothing made
    assert not panel.predict_folder(str(images))
    suggested = tmp_path / "new scans-predictions"
    assert seen[0][:2] == (str(suggested), True) and "created" in seen[0][2] and not suggested.exists()
    QTimer.singleShot(0, lambda: answer(True))
    assert panel.predict_folder(str(images))
    assert suggested.is_dir() and started[0][2] == str(suggested)
    assert (images / "mine.txt").read_text() == "a file of the user's"
    dialog = OutputFolderDialog(str(images / "mine.txt"))  # a file: not accepted
    assert not dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).isEnabled()
    dialog.deleteLater()


def test_the_banner_says_how_many_dicom_seg_files_were_not_written_and_why(window):
    from segstudio.data import Problem
    from segstudio.inference.predictor import PredictReport

    why = "Cannot write the DICOM SEG: the source images lack ImagePositionPatient"
    report = PredictReport(out_dir="/out", written=[f"/out/s{i}.png" for i in range(20)],
                           dicom_segs=[f"/out/s{i}_seg.dcm" for i in range(11)],
                           seg_failures=[Problem(f"s{i}.dcm", f"mask written, but no DICOM SEG: {why}") for i in range(9)])
    window.tabs.setCurrentIndex(2)
    window.review_panel._on_predicted((report, []))
    banner = window.review_panel.findChild(QLabel, "label_message_review")
    assert f"9 of 20 DICOM SEG files not written: {why}" in banner.text()
    assert window.state.message.level == "warning"


def test_the_fill_tolerance_box_sets_the_model_and_is_live_with_the_fill_tool(review):
    tools = review.tools
    tools.button_edit.setChecked(True)
    assert not tools.spin_tolerance.isEnabled()  # the brush is chosen
    tools.tool_buttons["fill"].click()
    assert tools.spin_tolerance.isEnabled()
    tools.spin_tolerance.setValue(25)
    assert review.model.tool.tolerance == 25 and "grey value" in tools.spin_tolerance.toolTip()
    tools.button_edit.setChecked(False)
    assert not tools.spin_tolerance.isEnabled()
