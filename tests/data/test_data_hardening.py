"""Bad input: pydicom's whole test corpus, broken files, fuzzing, a large folder, cancelling."""

import io
import shutil
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file

from segstudio.config import DataConfig
from segstudio.data import inspect_dataset, list_image_files
from segstudio.errors import Cancelled, DataError
from segstudio.io.registry import read_image

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"
MUST_LOAD = {"CT_small.dcm", "MR_small.dcm", "ExplVR_BigEnd.dcm", "JPEG2000.dcm", "JPGExtended.dcm",
             "JPEGLSNearLossless_08.dcm", "SC_rgb_small_odd_big_endian.dcm", "image_dfl.dcm",
             "examples_palette.dcm", "examples_overlay.dcm", "rtdose_expb.dcm", "693_J2KI.dcm"}
EXPECTED_REASONS = {
    "rtplan.dcm": "no pixel data (RT Plan Storage)",
    "rtstruct.dcm": "no pixel data (RT Structure Set Storage)",
    "test-SR.dcm": "no pixel data (Comprehensive SR Storage)",
    "waveform_ecg.dcm": "no pixel data (12-lead ECG Waveform Storage)",
    "MR_truncated.dcm": "truncated pixel data (8,130 of 8,192 bytes)",
    "liver_1frame.dcm": "DICOM SEG (a segmentation, not an image)",
    "badVR.dcm": "invalid NumberOfFrames in the header",
    "README.txt": "not a DICOM or image file (unrecognised content)",
}


def _outcome(path: Path):
    """Frames, or the reason: one short line without the path (its reader names the file)."""
    try:
        return read_image(path).frames
    except DataError as e:
        msg = str(e)
        assert "\n" not in msg and str(path) not in msg and len(msg) < 250
        return msg


def test_every_corpus_file_loads_or_has_a_reason(tmp_path):
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file())
    assert len(files) > 150
    out = {p: _outcome(p) for p in files}
    loaded = {p.name for p, o in out.items() if isinstance(o, list)}
    reasons = {p.name: o for p, o in out.items() if isinstance(o, str)}
    assert MUST_LOAD <= loaded and len(loaded) >= 45
    assert {k: reasons.get(k) for k in EXPECTED_REASONS} == EXPECTED_REASONS
    assert all(o[0].dtype == np.uint8 for o in out.values() if isinstance(o, list))
    groups = Counter(r.split(" (")[0].split(":")[0] for r in reasons.values())
    assert groups["no pixel data"] >= 60  # DICOMDIRs, plans, reports, structure sets...

    # The same folder as a dataset: every listed file is a pair or has a reported problem.
    masks = tmp_path / "masks"
    masks.mkdir()
    listed = list_image_files(CORPUS)
    for p in listed:
        frames = out[p] if isinstance(out[p], list) else [np.zeros((4, 4), np.uint8)]
        tifffile.imwrite(masks / f"{p.stem}.tif", np.stack([np.zeros(a.shape[:2], np.uint8) for a in frames]),
                         photometric="minisblack")
    report = inspect_dataset(DataConfig(str(CORPUS), str(masks)))
    unreadable = {Path(p.path).name for p in report.unreadable}
    assert unreadable == {p.name for p in listed if isinstance(out[p], str)} - {"liver_1frame.dcm"}
    assert {Path(p).name for p in report.unmatched_masks} == {  # SEGs go with the masks
        "liver_1frame.dcm", "liver_1frame.tif", "liver_expb_1frame.tif"}
    assert report.n_pairs == sum(len(out[p]) for p in listed if isinstance(out[p], list))


def _dicom_bytes(mk, tmp_path, **attrs) -> Path:
    return mk.dicom(tmp_path / "x.dcm", np.zeros((64, 64), np.int16), **attrs)


@pytest.mark.parametrize("make,reason", [
    (lambda p, mk: p.write_bytes(b""), "empty file (0 bytes)"),
    (lambda p, mk: p.write_bytes(np.random.default_rng(1).bytes(5000)),
     "not a DICOM or image file (unrecognised content)"),
    (lambda p, mk: p.write_bytes(mk.dicom(p, np.zeros((64, 64), np.int16)).read_bytes()[:-4000]),
     "truncated pixel data (4,192 of 8,192 bytes)"),
    (lambda p, mk: p.write_bytes(mk.dicom(p, np.zeros((64, 64), np.int16)).read_bytes()[:300]),
     "no pixel data (CT Image Storage without pixels: truncated file?)"),
    (lambda p, mk: mk.dicom(p, np.zeros((8, 8), np.uint8), Rows=60000, Columns=60000),
     "declared image size 60000x60000 x 1 frame(s) is too large (3,600 million values, "
     "limit 268 million); not decoded"),
    (lambda p, mk: mk.dicom(p, np.zeros((1, 1), np.int16)),
     "image is 1x1 pixel(s); too small to segment (at least 2x2)"),
    (lambda p, mk: mk.png(p.with_suffix(".png"), np.zeros((1, 5), np.uint8)).rename(p),
     "image is 5x1 pixel(s); too small to segment (at least 2x2)"),
])
def test_bad_files_have_specific_messages(tmp_path, mk, make, reason):
    path = tmp_path / "bad.dcm"
    make(path, mk)
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as e:
            read_image(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(e.value) == reason
    assert peak < 50e6  # the 60000 x 60000 file is refused before allocating


def test_png_named_dcm_loads(tmp_path, mk):
    mk.png(tmp_path / "p.png", mk.gradient()).rename(tmp_path / "p.dcm")
    np.testing.assert_array_equal(read_image(tmp_path / "p.dcm").frames[0], mk.gradient())


def test_mask_with_many_values_reported(data_dirs, mk):
    images, masks = data_dirs
    mk.png(images / "a.png", mk.gradient())
    mk.dicom(masks / "a.dcm", np.random.default_rng(0).integers(0, 4000, (16, 16)).astype(np.uint16))
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    [p] = report.other
    assert p.path == "masks/a.dcm" and "distinct values; expected a few class labels" in p.reason


def _seeds() -> list[bytes]:
    names = ["CT_small.dcm", "MR_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jp2klossless.dcm",
             "MR_small_jpeg_ls_lossless.dcm", "examples_palette.dcm", "rtdose.dcm", "image_dfl.dcm",
             "MR_small_bigendian.dcm", "JPGExtended.dcm", "no_meta.dcm"]
    png = io.BytesIO()
    Image.fromarray((np.arange(1024) % 251).astype(np.uint8).reshape(32, 32)).save(png, "PNG")
    return [Path(get_testdata_file(n)).read_bytes() for n in names] + [png.getvalue()]


SEEDS = _seeds()


@st.composite
def _mutated(draw) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=2048))
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_mutated())
def test_fuzzed_files_only_give_reasons(tmp_path, data):
    path = tmp_path / "f.dcm"
    path.write_bytes(data)
    out = _outcome(path)
    assert isinstance(out, str) or all(a.dtype == np.uint8 and a.ndim in (2, 3) for a in out)


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory, mk):
    """1,000 DICOM and 1,000 PNG images of 8 x 8 with their masks; 2 of the images broken."""
    images, masks = tmp_path_factory.mktemp("images"), tmp_path_factory.mktemp("masks")
    mk.dicom(images / "c0000.dcm", mk.gradient(8, 8).astype(np.int16), patient_id="P0")
    mk.png(images / "c0001.png", mk.gradient(8, 8))
    mk.png(masks / "c0000.png", mk.square(8, 8))
    for i in range(2, 2000):
        ext = "png" if i % 2 else "dcm"
        shutil.copyfile(images / f"c{i % 2:04d}.{ext}", images / f"c{i:04d}.{ext}")
    for i in range(1, 2000):
        shutil.copyfile(masks / "c0000.png", masks / f"c{i:04d}.png")
    (images / "c0002.dcm").write_bytes(b"")
    (images / "c0003.png").write_bytes(b"junk")
    return images, masks


@pytest.mark.slow
def test_large_folder_inspects_in_seconds_with_progress(big_folder):
    calls = []
    start = time.perf_counter()
    report = inspect_dataset(DataConfig(*map(str, big_folder)),
                             progress=lambda d, t, m: calls.append((d, t)))
    assert time.perf_counter() - start < 15
    assert report.n_pairs == 1998 and len(report.unreadable) == 2
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1] == (2000, 2000)
    assert all(d <= t for d, t in calls if t)


@pytest.mark.slow
@pytest.mark.parametrize("after", [5, 4100])  # while reading the 4,000 headers, while decoding
def test_large_folder_cancels(big_folder, after):
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > after
    start = time.perf_counter()
    with pytest.raises(Cancelled):
        inspect_dataset(DataConfig(*map(str, big_folder)), should_stop=stop)
    assert len(calls) == after + 1 and time.perf_counter() - start < 5
