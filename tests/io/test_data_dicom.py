"""DICOM in depth: transfer syntaxes, photometric interpretations, intensity, series order."""

import json

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.pixels import apply_color_lut
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEG2000Lossless,
                         JPEGLSLossless, RLELossless)

from segstudio.config import DataConfig
from segstudio.data import inspect_dataset, load_dataset
from segstudio.io import group_series
from segstudio.io.registry import read_image
from segstudio.preprocess.windowing import WINDOW_PRESETS, apply_window, parse_window


def _one(path, window="auto"):
    [arr] = read_image(path, parse_window(window)).frames
    return arr


MR_VARIANTS = ["MR_small_implicit.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
               "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
               "MR_small_padded.dcm"]


@pytest.mark.parametrize("name", MR_VARIANTS)
def test_lossless_syntaxes_match_explicit_little_endian(name):
    """Implicit VR, big endian, RLE, JPEG 2000 and JPEG-LS lossless decode to the same image."""
    np.testing.assert_array_equal(_one(get_testdata_file(name)),
                                  _one(get_testdata_file("MR_small.dcm")))


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                    RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_written_syntaxes_round_trip(tmp_path, mk, syntax):
    stored = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 3 + 100
    ref = mk.dicom(tmp_path / "ref.dcm", stored, slope=1, intercept=-1024, window=(400, 40))
    ds = pydicom.dcmread(ref)
    if syntax.is_compressed:
        ds.compress(syntax)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(tmp_path / "x.dcm", implicit_vr=syntax == ImplicitVRLittleEndian,
               little_endian=True)
    np.testing.assert_array_equal(_one(tmp_path / "x.dcm"), _one(ref))


RGB_LOSSLESS = ["SC_rgb_gdcm_KY.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle_16bit.dcm",
                "SC_rgb_rle_32bit.dcm", "SC_rgb_rle_2frame.dcm"]
RGB_LOSSY = ["SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm", "SC_rgb_dcmtk_+eb+cy+s4.dcm",
             "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm", "SC_rgb_jls_lossy_line.dcm",
             "SC_ybr_full_422_uncompressed.dcm"]


@pytest.mark.parametrize("name", RGB_LOSSLESS + RGB_LOSSY)
def test_colour_variants_match_rgb_reference(name):
    """RGB / YBR_FULL / YBR_FULL_422 / YBR_RCT in JPEG, JPEG-LS, J2K and RLE, 8 to 32 bits."""
    ref = read_image(get_testdata_file("SC_rgb_rle.dcm")).frames[0].astype(int)
    arr = read_image(get_testdata_file(name)).frames[0]
    assert arr.shape == (100, 100, 3) and arr.dtype == np.uint8
    diff = np.abs(arr.astype(int) - ref)
    assert diff.max() == 0 if name in RGB_LOSSLESS else diff.mean() < 4


def test_palette_colour_is_applied():
    path = get_testdata_file("examples_palette.dcm")
    arr = _one(path)
    ds = pydicom.dcmread(path)
    assert arr.shape == (*ds.pixel_array.shape, 3)
    np.testing.assert_array_equal(arr, apply_color_lut(ds.pixel_array, ds) >> 8)
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 10


@pytest.mark.parametrize("name,frames,shape", [
    ("JPGExtended.dcm", 1, (1024, 256)), ("693_J2KI.dcm", 1, (512, 512)),
    ("JPEGLSNearLossless_16.dcm", 1, (50, 10)), ("image_dfl.dcm", 1, (512, 512)),
    ("examples_ybr_color.dcm", 30, (240, 320, 3)), ("examples_jpeg2k.dcm", 1, (480, 640, 3)),
    ("rtdose_rle.dcm", 15, (10, 10)), ("SC_rgb_small_odd_jpeg.dcm", 1, (3, 3, 3))])
def test_other_corpus_images(name, frames, shape):
    out = read_image(get_testdata_file(name)).frames
    assert len(out) == frames and out[0].shape == shape and out[0].std() > 0


def test_file_without_meta_or_preamble(tmp_path, mk):
    ref = mk.dicom(tmp_path / "ref.dcm", mk.gradient(7, 5).astype(np.uint16))  # odd size
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, True
    write_dataset(fp, pydicom.dcmread(ref))  # the bare data set: no preamble, no file meta
    (tmp_path / "IMG0001").write_bytes(fp.getvalue())
    np.testing.assert_array_equal(_one(tmp_path / "IMG0001"), _one(ref))


def test_per_frame_rescale_of_enhanced_multiframe(tmp_path, mk):
    from pydicom.dataset import Dataset
    stored = np.stack([np.full((4, 4), 100, np.int16)] * 2)
    groups = []
    for slope, intercept in ((1, -100), (2, -100)):
        item, pvt = Dataset(), Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slope, intercept, "HU"
        item.PixelValueTransformationSequence = [pvt]
        groups.append(item)
    path = mk.dicom(tmp_path / "e.dcm", stored, multiframe=True,
                    PerFrameFunctionalGroupsSequence=groups)
    assert [int(a[0, 0]) for a in read_image(path, (200.0, 0.0)).frames] == [
        int(apply_window(np.float32(v), 200, 0)) for v in (0, 100)]


@pytest.mark.parametrize("preset", sorted(WINDOW_PRESETS))
def test_window_presets_on_hu(preset):
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(_one(path, preset), apply_window(hu, *WINDOW_PRESETS[preset]))


def test_issue_presets_as_level_width():
    level_width = {"brain": (40, 80), "subdural": (75, 215), "lung": (-600, 1500),
                   "mediastinum": (50, 350), "abdomen": (40, 400), "liver": (60, 160),
                   "bone": (400, 1800)}
    assert {k: (lvl, wid) for k, (wid, lvl) in WINDOW_PRESETS.items()} == level_width


def test_mr_auto_window_is_percentile_and_recorded(data_dirs, mk):
    images, masks = data_dirs
    for k in range(3):
        mk.dicom(images / f"mr{k}.dcm", (mk.gradient().astype(np.uint16) * 9), Modality="MR")
        mk.png(masks / f"mr{k}.png", mk.square())
    data, report = load_dataset(DataConfig(str(images), str(masks), window="auto"), 16)
    assert data.window == "auto" and data.images.max() == 255 and data.images.min() == 0
    assert any("percentile 0.5-99.5 for 3" in n for n in report.notes)


def test_series_ordered_along_slice_normal(data_dirs, mk):
    images, masks = data_dirs
    paths = mk.series(images, 4)                    # names sort in reverse slice order
    for p in paths:
        mk.png(masks / f"{p.stem}.png", mk.square())
    mk.png(images / "a_first.png", mk.gradient())
    mk.png(masks / "a_first.png", mk.square())
    data, report = load_dataset(DataConfig(str(images), str(masks)), 16)
    assert data.names == ["a_first"] + [p.stem for p in paths]
    assert [int(im[0, 0, 0]) for im in data.images[1:]] == sorted(int(im[0, 0, 0]) for im in data.images[1:])
    assert group_series(sorted(images.iterdir())) == [paths]


def test_series_falls_back_to_instance_number(tmp_path, mk):
    paths = mk.series(tmp_path, 4)
    for p in paths:  # drop the geometry: InstanceNumber (n - k) decides
        ds = pydicom.dcmread(p)
        del ds.ImagePositionPatient
        ds.save_as(p)
    assert group_series(paths) == [paths[::-1]]


def test_two_series_grouped_and_other_files_left_out(tmp_path, mk):
    a = mk.series(tmp_path, 3, names=["a1.dcm", "a2.dcm", "a3.dcm"])
    b = mk.series(tmp_path, 2, names=["b1.dcm", "b2.dcm"])
    png = mk.png(tmp_path / "x.png", mk.gradient())
    assert group_series([png, *b, *a]) == [b, a]


def test_no_direct_identifiers_in_report(data_dirs, mk):
    images, masks = data_dirs
    for p in mk.series(images, 3, patient_id="MRN-123456"):
        mk.png(masks / f"{p.stem}.png", mk.square())
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 8)
    text = report.format() + json.dumps(report.to_dict()) + repr(data.groups) + repr(data.names)
    assert "MRN-123456" not in text and "Doe" not in text and "Jane" not in text
    assert set(data.groups) == {data.groups[0]} and data.groups[0].startswith("patient-")
