"""The three-plane viewer's Qt-free state: slicing without copies in the training's orientation,
letters and aspect from the scan's geometry, the linked cursor and what each plane redraws."""

import nibabel as nib
import numpy as np
import pytest

from segstudio.preprocess.slicing import take_slice
from segstudio.io.registry import read_scan
from segstudio.editing.viewer_state import (KEY_STEPS, PlaneLetters, ScanGeometry, ViewerState,
                                            plane_of)

SHAPE = (6, 8, 10)  # (Z, Y, X)
SPACING = (5.0, 0.8, 0.8)  # 5 mm slices


def ramp(shape=SHAPE):
    return np.arange(np.prod(shape), dtype=np.int16).reshape(shape)


def recorder(view):
    seen = []
    view.connect(lambda change: seen.append(set(change.fields)))
    return seen


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_planes_are_views_oriented_like_the_training_slices(axis, tmp_path):
    vol = ramp()
    for k in (0, vol.shape[axis] - 1):
        plane = plane_of(vol, axis, k)
        assert np.shares_memory(plane, vol) and np.array_equal(plane, take_slice(vol, axis, k))
    channels = np.stack([vol, -vol])  # (C, Z, Y, X)
    plane = plane_of(channels, axis, 2)
    assert plane.shape[0] == 2 and np.shares_memory(plane, channels)
    assert np.array_equal(plane, take_slice(channels, axis, 2))
    mapped = np.memmap(tmp_path / "scan.raw", np.int16, "w+", shape=SHAPE)
    mapped[:] = vol
    plane = plane_of(mapped, axis, 1)
    assert isinstance(plane, np.memmap) and np.shares_memory(plane, mapped)


def test_anisotropic_spacing_is_drawn_to_scale():
    geo = ScanGeometry.canonical(SHAPE, SPACING)
    assert geo.plane_shape(1) == (6, 10) and geo.pixel_mm(1) == (5.0, 0.8)
    assert geo.aspect(0) == 1.0 and geo.aspect(1) == geo.aspect(2) == pytest.approx(6.25)
    assert geo.extent_mm(1) == pytest.approx((30.0, 8.0))
    view = ViewerState(geo).views[1]
    sx, sy, ox, oy = view.screen_transform(400, 300)
    assert sy / sx == pytest.approx(6.25)
    # fitted: the plane's 30 mm height fills the 300 px widget, centred
    assert view.to_screen(0, 0, 400, 300)[1] == pytest.approx(0)
    assert view.to_screen(6, 10, 400, 300)[1] == pytest.approx(300)
    assert view.to_screen(3, 5, 400, 300) == pytest.approx((200, 150))


def _scan_file(tmp_path, order):
    """A 3 mm-slice scan with one bright voxel at the patient's right, anterior, superior corner,
    stored in RAS or LPS voxel order."""
    nx, ny, nz = 10, 8, 6
    ras = np.zeros((nx, ny, nz), np.float32)
    ras[nx - 2, ny - 2, nz - 2] = 100  # i runs to the right, j anterior, k superior
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    if order == "LPS":  # the same voxels with i and j reversed
        flip = np.array([[-1, 0, 0, nx - 1], [0, -1, 0, ny - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
        ras, affine = ras[::-1, ::-1].copy(), affine @ flip
    path = tmp_path / f"{order}.nii.gz"
    nib.save(nib.Nifti1Image(ras, affine), path)
    return path


def test_ras_and_lps_files_show_the_same_letters_and_pictures(tmp_path):
    shown = {}
    for order in ("RAS", "LPS"):
        vol = read_scan(_scan_file(tmp_path, order))
        assert vol.orientation == order
        state = ViewerState.for_volume(vol)
        state.cursor.set_voxel(np.argwhere(vol.array == 100)[0])
        shown[order] = [(v.letters, v.image(vol.array).copy()) for v in state.views]
    assert [s[0] for s in shown["RAS"]] == [s[0] for s in shown["LPS"]] == [
        PlaneLetters("A", "P", "R", "L"), PlaneLetters("S", "I", "R", "L"), PlaneLetters("S", "I", "A", "P")]
    for (_, a), (_, b) in zip(shown["RAS"], shown["LPS"]):
        assert np.array_equal(a, b)
    # right-anterior-superior is near the top-left corner of every plane (radiological display)
    assert [tuple(np.argwhere(img == 100)[0]) for _, img in shown["RAS"]] == [(1, 1), (1, 1), (1, 1)]


def test_letters_and_flips_follow_the_affine_not_a_fixed_layout():
    canonical = ScanGeometry.canonical(SHAPE)
    flip_x = np.diag([1.0, 1.0, -1.0, 1.0])
    flip_x[2, 3] = SHAPE[2] - 1
    mirrored = ScanGeometry.from_affine(SHAPE, canonical.affine @ flip_x)  # X runs to the right
    assert mirrored.axcodes == "SPR" and mirrored.flips(0) == (False, True)
    assert mirrored.letters(0) == canonical.letters(0) == PlaneLetters("A", "P", "R", "L")
    vol = ramp()
    assert np.array_equal(mirrored.plane(vol[:, :, ::-1], 0, 2), canonical.plane(vol, 0, 2))
    assert mirrored.to_voxel(0, 2, 0, 0) == (2, 0, SHAPE[2] - 1)


def test_clicking_one_plane_moves_the_others_and_each_redraws_only_what_changed():
    state = ViewerState(ScanGeometry.canonical(SHAPE, SPACING), n_classes=3)
    axial, coronal, sagittal = state.views
    seen = [recorder(v) for v in state.views]
    y = coronal.index
    coronal.click(1.2, 7.9)  # display row 1 is z = 4 (superior up), column 7 is x = 7
    assert state.cursor.index == (4, y, 7) and (axial.index, sagittal.index) == (4, 7)
    assert coronal.crosshair() == (1.5, 7.5)
    assert seen == [[{"slice", "crosshair"}], [{"crosshair"}], [{"slice", "crosshair"}]]
    assert state.cursor.point == pytest.approx(state.geometry.world((4, y, 7)))
    sagittal.click(0, 0)  # top-left: superior, anterior
    assert state.cursor.index == (5, 0, 7) and seen[2][-1] == {"crosshair"}
    axial.step(-1)  # only the axial slice moves; the others move their crosshair
    assert [s[-1] for s in seen] == [{"slice"}, {"crosshair"}, {"crosshair"}]


def test_stepping_stops_at_the_ends_of_the_volume():
    state = ViewerState(ScanGeometry.canonical(SHAPE))
    axial = state.views[0]
    state.cursor.set_index(0, 0)
    assert not axial.step(-1) and axial.index == 0
    assert axial.step(KEY_STEPS["PageUp"]) and axial.index == 1
    assert axial.step(100) and axial.index == SHAPE[0] - 1 and not axial.step(1)


def test_window_presets_overlays_and_batched_changes():
    state = ViewerState(ScanGeometry.canonical(SHAPE), n_classes=3)
    cursor, seen = state.cursor, recorder(state.views[0])
    cursor.set_preset("lung")
    assert cursor.window_range == (-1350.0, 150.0) and seen == [{"window"}]
    with pytest.raises(ValueError, match="unknown window preset"):
        cursor.set_preset("lungs")
    with cursor.batch():
        cursor.set_overlay("compare")
        cursor.set_visible(2, False)
        cursor.set_opacity(3.0)
        cursor.set_filled(False)
    assert seen[1:] == [{"overlay"}]
    assert (cursor.overlay, cursor.visible, cursor.opacity, cursor.filled) == (
        "compare", (True, True, False), 1.0, False)
    cursor.set_opacity(1.0)  # unchanged: nothing is told
    assert len(seen) == 2
    with pytest.raises(ValueError, match="unknown overlay"):
        cursor.set_overlay("heatmap")


def test_zoom_keeps_the_point_under_the_mouse_and_reset_fits():
    view = ViewerState(ScanGeometry.canonical(SHAPE, SPACING)).views[2]
    before = view.to_screen(2.0, 3.0, 300, 300)
    view.zoom_at(2.5, 2.0, 3.0)
    assert view.to_screen(2.0, 3.0, 300, 300) == pytest.approx(before)
    assert view.from_screen(*before, 300, 300) == pytest.approx((2.0, 3.0))
    view.pan(1.0, 0.0)
    assert view.to_screen(1.0, 3.0, 300, 300) == pytest.approx(before)  # the picture moved down a row
    view.reset_camera()
    assert view.to_screen(3, 4, 300, 300) == pytest.approx((150, 150))


def test_double_click_maximises_one_plane_and_again_restores_three():
    state = ViewerState(ScanGeometry.canonical(SHAPE))
    seen = recorder(state.views[0])
    state.toggle_maximised(1)
    assert state.shown == (state.views[1],) and seen == [{"layout"}]
    state.toggle_maximised(1)
    assert state.shown == state.views and state.maximised is None
