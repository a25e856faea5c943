"""Reading rasters and DICOM into uint8 frames; windowing; resizing."""

import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.data import get_testdata_file

from segstudio.data.reader import frame_name
from segstudio.io.dicom_file import read_dicom, to_modality_units
from segstudio.io.registry import read_image
from segstudio.preprocess.slicing import resize_image, resize_mask
from segstudio.preprocess.windowing import WINDOW_PRESETS, apply_window, parse_window
from segstudio.errors import DataError


def frames(path, window: str = "auto") -> list[np.ndarray]:
    """The frames the app reads from a file (io.registry.read_image, the window setting parsed)."""
    return read_image(path, parse_window(window)).frames


def test_16bit_tiff_scaled_to_full_uint8_range(tmp_path):
    ramp = np.linspace(1000, 60000, 64 * 64).reshape(64, 64).astype(np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", ramp)
    [arr] = frames(tmp_path / "deep.tif")
    assert arr.dtype == np.uint8 and arr.shape == (64, 64)
    assert arr.min() == 0 and arr.max() == 255
    assert np.all(np.diff(arr.ravel().astype(int)) >= 0)  # order kept


def test_16bit_rgb_tiff_stays_rgb(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 65535, (8, 9, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    [arr] = frames(tmp_path / "rgb.tif")
    assert arr.shape == (8, 9, 3) and arr.dtype == np.uint8


def test_tiff_stack_gives_one_frame_per_page(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.arange(5 * 64, dtype=np.uint8).reshape(5, 8, 8))
    out = frames(tmp_path / "stack.tif")
    assert len(out) == 5 and all(a.shape == (8, 8) for a in out)
    assert [frame_name(tmp_path / "stack.tif", i, len(out)) for i in range(5)] == [f"stack#{i}" for i in range(5)]
    assert frame_name(tmp_path / "one.tif", 0, 1) == "one"  # a single frame is named by its file


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp"])
def test_gray_saved_as_rgb_is_gray(tmp_path, ext):
    gray = np.full((16, 16), 100, np.uint8)
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / f"g.{ext}")
    [arr] = frames(tmp_path / f"g.{ext}")
    assert arr.shape == (16, 16) and abs(int(arr.mean()) - 100) <= 2


def test_rgba_png_drops_alpha(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 128
    Image.fromarray(rgba).save(tmp_path / "a.png")
    [arr] = frames(tmp_path / "a.png")
    assert arr.shape == (4, 4, 3) and arr[0, 0].tolist() == [200, 0, 0]


def test_ct_modality_units_match_slope_intercept():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu = to_modality_units(ds.pixel_array, ds)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(hu, expected)
    assert float(ds.RescaleIntercept) == -1024  # so the check above is not trivial


def test_ct_window_applied_to_hu():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    [arr] = frames(path, "400/40")
    np.testing.assert_array_equal(arr, apply_window(hu, 400, 40))
    lo = hu <= 40 - 200
    assert lo.any() and np.all(arr[lo] == 0)


def test_own_slope_intercept_and_file_window(tmp_path, mk):
    stored = np.array([[0, 100], [200, 300]], np.int16)
    path = mk.dicom(tmp_path / "s.dcm", stored, slope=2.0, intercept=-100, window=(400, 200))
    hu = to_modality_units(stored, pydicom.dcmread(path))
    np.testing.assert_allclose(hu, [[-100, 100], [300, 500]])
    # file window 400/200 spans 0..400 HU
    [auto] = frames(path, "auto")
    [file] = frames(path, "file")
    np.testing.assert_array_equal(auto, apply_window(hu, 400, 200))
    np.testing.assert_array_equal(auto, file)
    assert auto.tolist() == [[0, 64], [191, 255]]


def test_auto_without_file_window_uses_percentiles(tmp_path, mk):
    stored = np.arange(100, dtype=np.int16).reshape(10, 10) * 10
    path = mk.dicom(tmp_path / "p.dcm", stored)
    d = read_dicom(path, parse_window("auto"))
    assert d.window == "percentile"
    assert d.frames[0].min() == 0 and d.frames[0].max() == 255


def test_presets_and_window_strings():
    assert WINDOW_PRESETS["abdomen"] == (400, 40) and WINDOW_PRESETS["lung"] == (1500, -600)
    assert parse_window("Abdomen") == parse_window("400/40") == (400.0, 40.0)
    assert parse_window("1500/-600") == (1500.0, -600.0)
    for bad in ("nonsense", "0/40", "400", "a/b"):
        with pytest.raises(DataError, match="Unknown window"):
            parse_window(bad)
    with pytest.raises(DataError):
        frames(get_testdata_file("CT_small.dcm"), "wide")


def test_monochrome1_is_inverted(tmp_path, mk):
    stored = np.arange(64, dtype=np.uint16).reshape(8, 8) * 50
    m2 = frames(mk.dicom(tmp_path / "m2.dcm", stored, window=(3000, 1500)))[0]
    m1 = frames(mk.dicom(tmp_path / "m1.dcm", stored, window=(3000, 1500), photometric="MONOCHROME1"))[0]
    assert m2[0, 0] < m2[-1, -1]
    np.testing.assert_array_equal(m1.astype(int), 255 - m2.astype(int))


def test_multiframe_dicom_one_item_per_frame(tmp_path, mk):
    vol = np.stack([np.full((6, 7), v, np.int16) for v in (0, 100, 200)])
    path = mk.dicom(tmp_path / "vol.dcm", vol, window=(200, 100), multiframe=True)
    out = frames(path)
    assert [int(a[0, 0]) for a in out] == [0, 128, 255]
    assert all(a.shape == (6, 7) for a in out)


def test_pydicom_multiframe_testfile():
    out = frames(get_testdata_file("rtdose.dcm"))
    assert len(out) == 15 and out[0].shape == (10, 10)


def test_rgb_dicom_stays_rgb_rle():
    out = frames(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    assert len(out) == 2 and out[0].shape == (100, 100, 3) and out[0].dtype == np.uint8


def test_jpeg_compressed_dicom_decodes():
    pytest.importorskip("pylibjpeg")
    out = frames(get_testdata_file("SC_jpeg_no_color_transform.dcm") or get_testdata_file("examples_ybr_color.dcm"))
    assert out and out[0].ndim == 3 and out[0].std() > 0


def test_patient_is_hashed_never_returned(tmp_path, mk):
    path = mk.dicom(tmp_path / "p.dcm", mk.gradient().astype(np.int16), patient_id="PAT-001")
    d = read_dicom(path, "auto")
    assert d.group.startswith("patient-") and "PAT-001" not in d.group and len(d.group) == 18


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"\0" * 128 + b"DICM" + b"\x02\x00\x10", "truncated or corrupt DICOM"),
    (bytes(range(256)) * 8, "unrecognised content"),
])
def test_bad_dicom_files_raise_one_line_data_error(tmp_path, content, reason):
    p = tmp_path / "bad.dcm"
    p.write_bytes(content)
    with pytest.raises(DataError, match=reason) as e:
        frames(p)
    assert "\n" not in str(e.value) and "bad.dcm" not in str(e.value)  # the caller names the file


def test_dicom_without_pixel_data(tmp_path, mk):
    path = mk.dicom(tmp_path / "np.dcm", mk.gradient())
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(DataError, match="no pixel data"):
        frames(path)


def test_truncated_dicom_pixel_data(tmp_path, mk):
    path = mk.dicom(tmp_path / "t.dcm", np.zeros((64, 64), np.int16))
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DataError, match="truncated pixel data"):
        frames(path)


def test_truncated_png(tmp_path, mk):
    path = mk.png(tmp_path / "t.png", np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="cannot decode PNG"):
        frames(path)


def test_missing_file():
    with pytest.raises(DataError, match="cannot open file"):
        frames("/nonexistent/x.png")


def test_resize_shapes_and_nearest_masks():
    gray, rgb = np.zeros((10, 20), np.uint8), np.zeros((10, 20, 3), np.uint8)
    rgb[..., 1] = 7
    assert resize_image(gray, 8).shape == (1, 8, 8)
    out = resize_image(rgb, 8)
    assert out.shape == (3, 8, 8) and out.dtype == np.uint8 and np.all(out[1] == 7)
    labels = np.random.default_rng(0).integers(0, 3, (37, 23)).astype(np.uint8) * 5
    small = resize_mask(labels, 16)
    assert small.shape == (16, 16) and set(np.unique(small)) <= {0, 5, 10}
