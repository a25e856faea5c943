"""The three-plane scan viewer (ui/panels/scan_viewer.py): linked crosshair, stepping, physical
aspect, painting in any plane, undo across planes, and bad input (a label of another geometry, a
scan too large, an oblique scan) as notes."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from segstudio.editing.scan_loading import ScanData, check_fits, load_scan_data, obliquity
from segstudio.editing.viewer_state import ScanGeometry
from segstudio.errors import DataError
from segstudio.inference.review import ReviewItem
from segstudio.ui.panels.scan_viewer import ScanViewer

SHAPE, SPACING = (12, 20, 16), (3.0, 0.8, 0.8)  # (z, y, x): 3 mm slices, 0.8 mm pixels


def make_data(truth=True) -> ScanData:
    values = np.zeros(SHAPE, np.float32)
    values[:, 5:15, 4:12] = 60.0  # "liver" at 60 HU in a body at 0
    values[0, 0, 0] = -1000.0
    labels = np.zeros(SHAPE, np.uint8)
    labels[4:8, 6:14, 5:11] = 1
    pred = labels.copy()
    pred[4:8, 6:8, 5:11] = 2  # the wrong class on part of it
    geometry = ScanGeometry.canonical(SHAPE, SPACING)
    return ScanData.from_arrays("case", values, geometry, labels if truth else None, pred,
                                ("background", "liver", "kidney"))


@pytest.fixture
def viewer(qtbot):
    v = ScanViewer()
    qtbot.addWidget(v)
    v.resize(900, 420)
    v.set_data(make_data())
    v.show()
    qtbot.waitExposed(v)
    return v


def screen_pos(plane, row: float, col: float) -> QPoint:
    """The viewport position of display (row, col) of a plane."""
    scene = plane.box.mapViewToScene(QPointF(col * plane.mm[1], row * plane.mm[0]))
    return plane.graphics.mapFromScene(scene)


def test_a_click_in_one_plane_moves_the_other_two(viewer, qtbot):
    axial, coronal, sagittal = viewer.planes
    before = viewer.state.cursor.index
    qtbot.mouseClick(axial.graphics.viewport(), Qt.MouseButton.LeftButton, pos=screen_pos(axial, 3.5, 12.5))
    z, y, x = viewer.state.cursor.index
    g = viewer.data.geometry
    assert z == before[0]  # the axial slice stays
    assert (y, x) == g.to_voxel(0, z, 3.5, 12.5)[1:]
    assert coronal.view.index == y and sagittal.view.index == x
    row, col = coronal.view.crosshair()  # the coronal crosshair's vertical line is at that x
    assert coronal.vline.value() == pytest.approx(col * coronal.mm[1])


def test_the_wheel_and_keys_step_the_plane_under_the_mouse(viewer, qtbot):
    axial, coronal, sagittal = viewer.planes
    z, y, x = viewer.state.cursor.index
    coronal.view.step(1)
    assert viewer.state.cursor.index == (z, y + 1, x)
    sagittal.graphics.setFocus()
    qtbot.keyClick(sagittal.graphics, Qt.Key.Key_Right)
    qtbot.keyClick(sagittal.graphics, Qt.Key.Key_PageUp)
    assert viewer.state.cursor.index == (z, y + 1, x + 2)
    viewer.hovered = axial
    viewer.step_hovered(-1)
    assert viewer.state.cursor.index == (z - 1, y + 1, x + 2)
    assert axial.label_index.text() == f"Axial {z}/{SHAPE[0]}"


def test_planes_are_drawn_to_scale(viewer, qtbot):
    """A 3 mm slice scan's coronal view is not squashed: a voxel is 3.75 times taller than wide."""
    coronal = viewer.planes[1]
    a, b = screen_pos(coronal, 0, 0), screen_pos(coronal, 4, 4)
    assert (b.y() - a.y()) / (b.x() - a.x()) == pytest.approx(3.0 / 0.8, rel=0.03)
    axial = viewer.planes[0]
    a, b = screen_pos(axial, 0, 0), screen_pos(axial, 10, 10)
    assert (b.y() - a.y()) / (b.x() - a.x()) == pytest.approx(1.0, rel=0.03)
    assert [p.letters["top"].text() for p in viewer.planes] == ["A", "S", "S"]
    assert [p.letters["left"].text() for p in viewer.planes] == ["R", "R", "A"]


def test_painting_in_the_coronal_plane_changes_that_planes_voxels(viewer, qtbot):
    coronal = viewer.planes[1]
    viewer.set_editing(True)
    viewer.tools.set_tool("brush", radius=0, label=2)
    labels = viewer.data.mask.labels
    before = labels.copy()
    y = coronal.view.index
    port = coronal.graphics.viewport()
    qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=screen_pos(coronal, 1.5, 2.5))
    qtbot.mouseMove(port, pos=screen_pos(coronal, 1.5, 6.5))
    qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=screen_pos(coronal, 1.5, 6.5))
    changed = np.argwhere(labels != before)
    assert len(changed) == 5
    assert set(changed[:, 1]) == {y}  # only the coronal plane on screen
    assert set(changed[:, 0]) == {SHAPE[0] - 2}  # display row 1 is z 10 (superior up)
    assert sorted(changed[:, 2]) == [2, 3, 4, 5, 6]
    assert (labels[SHAPE[0] - 2, y, 2:7] == 2).all()
    assert viewer.model.history.can_undo and viewer.data.mask.unsaved


def test_undo_and_redo_go_across_planes(viewer, qtbot):
    viewer.set_editing(True)
    viewer.tools.set_tool("brush", radius=1, label=1)
    labels = viewer.data.mask.labels
    start = labels.copy()
    for plane, (r, c) in zip(viewer.planes, ((2.5, 2.5), (3.5, 12.5), (1.5, 15.5))):
        port = plane.graphics.viewport()
        qtbot.mousePress(port, Qt.MouseButton.LeftButton, pos=screen_pos(plane, r, c))
        qtbot.mouseRelease(port, Qt.MouseButton.LeftButton, pos=screen_pos(plane, r, c))
    after = labels.copy()
    assert len(viewer.model.history) == 3 and not np.array_equal(after, start)
    for _ in range(3):
        viewer.undo()
    assert np.array_equal(labels, start)
    for _ in range(3):
        viewer.redo()
    assert np.array_equal(labels, after)


def test_volume_tools_from_the_viewer(viewer, qtbot):
    """Wand in 3-D, the range brush stopping outside [lo, hi], island removal and interpolation."""
    viewer.set_editing(True)
    ed = viewer.editor
    labels = viewer.data.mask.labels
    labels[...] = 0
    viewer.tools.set_tool("wand", label=1, tolerance=10, wand_3d=True)
    viewer._record(ed.press(0, 6, 10, 8))
    assert (labels == 1).sum() == (viewer.values == 60).sum()  # the whole "liver", every slice
    labels[...] = 0
    viewer.tools.set_tool("range", radius=6, label=2, lo=50, hi=70)
    ed.press(0, 3, 10, 8)
    viewer._record(ed.release())
    painted = labels[3] == 2
    assert painted.any() and (viewer.values[3][painted] == 60).all()  # stopped at the "fat" (0)
    viewer.tools.set_tool("island")
    viewer._record(ed.press(0, 3, 10, 8))
    assert not (labels == 2).any()
    labels[2, 6:12, 6:10] = 1
    labels[8, 6:12, 6:10] = 1
    viewer.tools.set_tool("brush", label=1)
    viewer.last_axis = 0
    with qtbot.waitSignal(viewer.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=20000):
        assert viewer.interpolate()
    assert all((labels[k, 6:12, 6:10] == 1).all() for k in range(2, 9))
    viewer.undo()
    assert not labels[3:8].any()


def test_accept_the_prediction_for_a_slice_a_structure_or_the_scan(viewer):
    viewer.set_editing(True)
    labels, pred = viewer.data.mask.labels, viewer.data.pred
    viewer.hovered = viewer.planes[0]
    z = viewer.planes[0].view.index
    viewer.accept("slice")
    assert np.array_equal(labels[z], pred[z]) and not np.array_equal(labels, pred)
    viewer.tools.set_tool(label=2)
    viewer.accept("structure")
    assert np.array_equal(labels == 2, pred == 2)
    viewer.accept("scan")
    assert np.array_equal(labels, pred)


def test_compare_overlay_shows_the_wrong_class_colour_and_hidden_classes(viewer):
    from segstudio.palette import COMPARE, WRONG_CLASS

    axial = viewer.planes[0]
    viewer.state.cursor.set_index(0, 5)
    viewer.state.cursor.set_overlay("compare")
    rgba = axial.overlay_item.image
    r, c = viewer.data.geometry.to_display(0, (5, 7, 6))
    assert tuple(rgba[r, c, :3]) == COMPARE[WRONG_CLASS][1] and rgba[r, c, 3] == 255
    viewer.class_buttons[0].setChecked(False)  # hide liver
    viewer.class_buttons[1].setChecked(False)  # and kidney: nothing left
    assert axial.overlay_item.image[..., 3].max() == 0


def test_a_label_of_another_geometry_is_a_note_not_painted(qtbot, tmp_path):
    nib = pytest.importorskip("nibabel")
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    nib.save(nib.Nifti1Image(np.zeros((16, 20, 12), np.float32), affine), tmp_path / "scan.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((16, 20, 10), np.uint8), affine), tmp_path / "label.nii.gz")
    empty = np.zeros((1, 1, 1), np.uint8)
    item = ReviewItem(0, "scan", empty, None, empty, (), float("nan"), str(tmp_path / "scan.nii.gz"),
                      mask_file=str(tmp_path / "label.nii.gz"))
    data = load_scan_data(item, None, None, progress=lambda *a: None, should_stop=lambda: False)
    assert data.truth is None and data.mask is None
    assert "label.nii.gz is not shown and cannot be corrected" in data.notes[0] and "10" in data.notes[0]
    v = ScanViewer()
    qtbot.addWidget(v)
    v.set_data(data)
    assert not v.label_note.isHidden() and "cannot be corrected" in v.label_note.text()
    assert v.data.geometry.shape == (12, 20, 16) and len(v.planes) == 3


def test_too_large_and_oblique_scans_are_said(tmp_path):
    with pytest.raises(DataError, match=r"300 x 512 x 512 voxels need about 0.6 GB.*0.1 GB"):
        check_fits((300, 512, 512), "big", available=100_000_000)
    angle = np.radians(10)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0, 0], [np.sin(angle), np.cos(angle), 0, 0],
                    [0, 0, 1, 0], [0, 0, 0, 1]])
    assert obliquity(rot @ np.diag([1.0, 1.0, 1.0, 1.0])) == pytest.approx(10, abs=0.01)
    assert obliquity(np.diag([3.0, 0.8, 0.8, 1.0])) == 0
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Nifti1Image(np.ones((16, 20, 12), np.float32), rot @ np.diag([0.8, 0.8, 3.0, 1.0])),
             tmp_path / "oblique.nii.gz")
    empty = np.zeros((1, 1, 1), np.uint8)
    item = ReviewItem(0, "oblique", empty, None, empty, (), float("nan"), str(tmp_path / "oblique.nii.gz"))
    data = load_scan_data(item, None, None, progress=lambda *a: None, should_stop=lambda: False)
    assert "10.0° off the patient's: shown resampled" in data.notes[0] and data.mask is None
    assert obliquity(data.geometry.affine) == 0 and data.values.shape[1:] != (20, 16)


def test_the_review_opens_a_scan_in_three_planes_off_the_gui_thread(window, qtbot, tmp_path):
    """A scan item whose file is there opens at full size in the scan viewer (loaded by the task
    runner); a 2-D item goes back to the 2-D viewer."""
    nib = pytest.importorskip("nibabel")
    nib.save(nib.Nifti1Image(np.zeros((16, 20, 12), np.float32), np.diag([0.8, 0.8, 3.0, 1.0])),
             tmp_path / "scan.nii.gz")
    small = np.zeros((3, 8, 8), np.uint8)
    item = ReviewItem(0, "scan", small, small, small, (1.0, 1.0), 1.0, str(tmp_path / "scan.nii.gz"))
    window.tabs.setCurrentIndex(2)
    panel = window.review_panel
    panel.set_items([item], ("background", "liver"))
    qtbot.waitUntil(lambda: panel.scan_viewer.data is not None, timeout=20000)
    assert panel.showing_scan and len(panel.scan_viewer.planes) == 3
    assert panel.scan_viewer.data.geometry.shape == (12, 20, 16)  # full size, not the 8 px item
    assert panel.tools.tool_buttons["brush"].isHidden()  # the scan viewer brings its own tools
    flat = ReviewItem(0, "image", np.zeros((8, 8), np.uint8), None, np.zeros((8, 8), np.uint8), (), float("nan"))
    panel.set_items([flat], ("background", "liver"))
    assert not panel.showing_scan and not panel.tools.tool_buttons["brush"].isHidden()


def test_a_scan_corrected_in_a_coronal_plane_saves_through_the_reviews_path(qtbot, tmp_path):
    """The label volume goes to MASKS-corrections/ in the file's own orientation (here LAS); the
    user's mask is not written."""
    nib = pytest.importorskip("nibabel")
    from segstudio.editing.store import MaskContext
    from segstudio.io.registry import read_scan

    for d in ("images", "masks"):
        (tmp_path / d).mkdir()
    affine = np.diag([-0.8, 0.8, 3.0, 1.0])
    labels = np.zeros((16, 20, 12), np.uint8)
    labels[4:8, 5:10, 3:6] = 1
    nib.save(nib.Nifti1Image(np.zeros((16, 20, 12), np.float32), affine), tmp_path / "images/a.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "masks/a.nii.gz")
    ctx = MaskContext(["background", "liver"], [0, 1], False, str(tmp_path / "masks"), mask_suffix=".nii.gz")
    e = np.zeros((1, 1, 1), np.uint8)
    item = ReviewItem(0, "a", e, e, e, (), 1.0, str(tmp_path / "images/a.nii.gz"),
                      mask_file=str(tmp_path / "masks/a.nii.gz"))
    data = load_scan_data(item, ctx, None, progress=lambda *a: None, should_stop=lambda: False)
    v = ScanViewer()
    qtbot.addWidget(v)
    v.set_data(data)
    v.set_editing(True)
    v.tools.set_tool("brush", radius=0, label=1)
    v.editor.press(1, 2, 10, 1)  # coronal plane y = 2, voxel (z 10, x 1)
    v._record(v.editor.release())
    files, problems = v.model.save()
    assert not problems and files[0].parent.name == "masks-corrections"
    saved = read_scan(files[0], mask=True).array
    before = read_scan(tmp_path / "masks/a.nii.gz", mask=True).array
    assert np.argwhere(saved != before).tolist() == [[10, 2, 1]]
    assert np.array_equal(np.asarray(nib.load(tmp_path / "masks/a.nii.gz").dataobj), labels)
    assert not v.model.unsaved()
