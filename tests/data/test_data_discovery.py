"""File discovery and format sniffing."""

import numpy as np
import tifffile

from segstudio.data import list_image_files
from segstudio.io.registry import read_image
from segstudio.io.sniff import sniff_format


def test_lists_supported_files_sorted_and_skips_others(tmp_path, mk):
    img = mk.gradient()
    for name in ("b.png", "a.JPG", "c.tif", "d.bmp", ".hidden.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    mk.dicom(tmp_path / "IM0001", img)                 # no extension, DICM preamble
    mk.dicom(tmp_path / "1.2.840.5", img)              # UID-like name
    (tmp_path / "README").write_text("not dicom")
    (tmp_path / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.png").write_bytes(b"x")
    names = [p.name for p in list_image_files(tmp_path)]
    assert names == ["1.2.840.5", "IM0001", "a.JPG", "b.png", "c.tif", "d.bmp"]


def test_sniff_by_content(tmp_path, mk):
    mk.png(tmp_path / "x.png", mk.gradient())
    mk.dicom(tmp_path / "x.dcm", mk.gradient())
    tifffile.imwrite(tmp_path / "x.tif", mk.gradient())
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "junk.png").write_bytes(b"hello world" * 20)
    assert [sniff_format(tmp_path / n) for n in ("x.png", "x.dcm", "x.tif", "empty.png", "junk.png")] \
        == ["PNG", "DICOM", "TIFF", "EMPTY", ""]


def test_png_named_dcm_is_read_as_png(tmp_path, mk):
    img = mk.gradient()
    mk.png(tmp_path / "disguised.dcm", img)
    [arr] = read_image(tmp_path / "disguised.dcm").frames
    np.testing.assert_array_equal(arr, img)
