"""The built-in phantom sample dataset."""

import time

import numpy as np
import pydicom

from segstudio.config import DataConfig
from segstudio.data import load_dataset, sample_dataset


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_and_fast(tmp_path):
    t = time.perf_counter()
    sample_dataset(tmp_path / "a")
    assert time.perf_counter() - t < 5
    sample_dataset(tmp_path / "b")
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 40 + 40 + 1 + 1 and a == b


def test_reused_when_complete_and_rebuilt_for_other_parameters(tmp_path):
    images, masks = sample_dataset(tmp_path, n=6, size=32)
    first = images / "phantom_01_000.dcm"
    first.write_bytes(b"changed")  # a complete dataset is not rewritten
    sample_dataset(tmp_path, n=6, size=32)
    assert first.read_bytes() == b"changed"
    sample_dataset(tmp_path, n=4, size=32)
    assert len(list(images.glob("*.dcm"))) == 4 and first.read_bytes() != b"changed"


def test_dicom_content_is_ct_like_and_anonymous(tmp_path):
    images, masks = sample_dataset(tmp_path)
    files = sorted(images.glob("*.dcm"))
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage and ds.Modality == "CT"
    assert (ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth) == (-1024, 1, 40, 400)
    assert ds.pixel_array.dtype == np.int16 and ds.pixel_array.shape == (128, 128)
    patients = {pydicom.dcmread(f, stop_before_pixels=True).PatientID for f in files}
    assert patients == {f"PHANTOM-{i:02d}" for i in range(1, 7)}
    assert (masks / "classes.txt").read_text().split() == ["background", "liver", "kidney"]


def test_loads_with_three_separable_classes(tmp_path):
    images, masks = sample_dataset(tmp_path)
    data, report = load_dataset(DataConfig(str(images), str(masks)), 64)
    assert data.codes == ["background", "liver", "kidney"] and len(data.names) == 40
    assert report.split.startswith("by patient") and not report.problems()
    img, m = data.images[:, 0].astype(float), data.masks
    liver, kidney = img[m == 1].mean(), img[m == 2].mean()
    assert liver - np.median(img[m == 0]) > 30 and kidney - liver > 30
    # CT: one window for the whole dataset, from the organs' HU (80 and 160, 15 HU noise)
    width, level = (float(v) for v in data.window.split("/"))
    assert 110 < width < 220 and 90 < level < 150
