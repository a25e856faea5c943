"""A DICOM series (a folder tree of slices) as one 3-D scan, and its labels from a DICOM SEG.

The slices are found and ordered with the headers (series.py: by position along the slice normal),
and read with SimpleITK's series reader, which gives the geometry (origin, spacing, direction) and
applies each slice's modality rescale (HU for CT). A DICOM SEG referencing the slices becomes a
label volume in the series' geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from ..errors import DataError
from .dicom import first_line, open_capped, quiet
from .discovery import DICOM_EXTS, sniff_format
from .series import DicomHeader, read_header, series_order
from .volume import Volume, canonical_volume, itk_data

MIN_SLICES = 2  # fewer slices than this is a 2-D image, not a series


def _dicom_files(folder: Path):
    """(file, preamble?) for files under `folder` (recursively) that start like DICOM, by path."""
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            try:
                fmt = sniff_format(p)
            except OSError:
                continue
            if fmt == "DICOM" or (not fmt and p.suffix.lower() in DICOM_EXTS):
                yield p, fmt == "DICOM"


def dicom_files(folder: Path) -> list[Path]:
    """Files under `folder` (recursively) that start like DICOM, sorted by path."""
    return [p for p, _ in _dicom_files(folder)]


def series_of(folder: Path) -> tuple[list[Path], list[Path], dict[Path, DicomHeader]]:
    """(the image slices of the folder's series in slice order, its DICOM SEG files, headers).
    A folder holding several image series uses the one with the most slices."""
    headers = {p: h for p in dicom_files(folder) if (h := read_header(p)) is not None}
    segs = [p for p, h in headers.items() if h.is_seg]
    by_series: dict[str, list[Path]] = {}
    for p, h in headers.items():
        if not h.is_seg:
            by_series.setdefault(h.series_uid, []).append(p)
    if not by_series:
        return [], segs, headers
    largest = max(by_series.values(), key=len)
    return series_order(largest, headers), segs, headers


def is_series_folder(folder: Path) -> bool:
    """`folder` holds (somewhere under it) a DICOM series of two or more slices."""
    found, preamble = 0, False
    for _, dicom in _dicom_files(folder):  # stops at the first slices: a large tree is not read
        found, preamble = found + 1, preamble or dicom
        if found >= MIN_SLICES and preamble:
            return True
    return False


def read_dicom_series(folder: Path) -> Volume:
    """The folder's series as a canonical Volume (float32, modality units); DataError when it
    has no series or SimpleITK cannot read it."""
    slices, _, _ = series_of(Path(folder))
    if len(slices) < MIN_SLICES:
        raise DataError("no DICOM series of two or more slices in the folder")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in slices])
    try:
        with quiet():
            img = reader.Execute()
    except RuntimeError as e:
        raise DataError(f"cannot read the DICOM series ({first_line(e)})") from e
    data, affine = itk_data(img, mask=False)
    with quiet(), open_capped(slices[0]) as f:
        modality = str(pydicom.dcmread(f, stop_before_pixels=True, force=True).get("Modality", "") or "")
    volume = canonical_volume(data, affine, None, modality.upper(), [str(p) for p in slices], "dicom", False)
    return volume


def read_seg_volume(seg_path: Path, image: Volume, names: list[str]) -> Volume:
    """A DICOM SEG's labels as a label volume in the geometry of the series `image` was read
    from (its slices are the SEG's referenced images); values index `names` (background first,
    then the segment labels of the dataset's SEGs)."""
    from .seg import read_seg, seg_frames

    seg = read_seg(Path(seg_path))
    slices = [Path(p) for p in image.source]
    headers = [read_header(p) for p in slices]
    if not all(h is not None and h.sop_uid in seg.references for h in headers):
        raise DataError("the DICOM SEG does not reference every slice of the series")
    planes = [seg_frames(seg, h.sop_uid, 1, names)[0] for h in headers]  # (rows, cols) each
    native = np.stack(planes, axis=-1).transpose(1, 0, 2)  # (i, j, k): columns, rows, slices
    affine = image.native.affine
    if native.shape != image.native.shape:
        raise DataError(f"the DICOM SEG's frames are {native.shape[0]}x{native.shape[1]}, the series' "
                        f"slices {image.native.shape[0]}x{image.native.shape[1]}")
    return canonical_volume(native, affine, None, "", [str(seg_path)], "dicom-seg", True)


def is_seg_file(path: Path) -> bool:
    header = read_header(Path(path)) if Path(path).is_file() else None
    return header is not None and header.is_seg
