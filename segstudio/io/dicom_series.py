"""A DICOM series (a folder tree of slices) as one 3-D scan, and the slice order of a series.

The slices are found and ordered with their headers (by ImagePositionPatient projected on the
slice normal, else by InstanceNumber), and read with SimpleITK's series reader, which gives the
geometry (origin, spacing, direction) and applies each slice's modality rescale (HU for CT).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import SimpleITK as sitk

from ..errors import DataError
from .dicom_file import DicomHeader, open_capped, quiet, read_header
from .itk import itk_data
from .reasons import first_line
from .sniff import DICOM_EXTS, sniff_format
from .volume import Volume, canonical_volume

MIN_SLICES = 2  # fewer slices than this is a 2-D image, not a series


def can_read(path: Path, head: bytes) -> bool:
    """A folder: its series (the error says when it holds none)."""
    return path.is_dir()


def read(folder: Path, *, mask: bool = False) -> Volume:
    """The folder's series as a canonical Volume (float32, modality units); DataError when it
    has no series or SimpleITK cannot read it, or for a label (`mask`: labels are single files)."""
    if mask:
        raise DataError("a label must be a single file (a label volume or a DICOM SEG)")
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
    return canonical_volume(data, affine, None, modality.upper(), [str(p) for p in slices], "dicom", False)


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


def series_order(paths: list[Path], headers: dict[Path, DicomHeader]) -> list[Path]:
    """`paths` with each series' files together in slice order; a series sits where its first
    file is in `paths`, and files outside any series keep their place."""
    return [p for members in _by_series(paths, headers) for p in _slice_order(members, headers)]


def group_series(paths: list[str | Path]) -> list[list[Path]]:
    """The DICOM files among `paths` grouped by SeriesInstanceUID, each group in slice order."""
    paths = [Path(p) for p in paths]
    headers = {p: h for p in paths if (h := read_header(p)) is not None and h.series_uid}
    return [_slice_order(members, headers) for members in _by_series([p for p in paths if p in headers], headers)]


def _by_series(paths: list[Path], headers: dict[Path, DicomHeader]) -> list[list[Path]]:
    """`paths` grouped by series UID, groups in order of their first file; a file without a
    series is a group of its own."""
    groups: dict[str, list[Path]] = {}
    for i, p in enumerate(paths):
        h = headers.get(p)
        groups.setdefault(h.series_uid if h and h.series_uid else f"#{i}", []).append(p)
    return list(groups.values())


def _slice_order(members: list[Path], headers: dict[Path, DicomHeader]) -> list[Path]:
    if len(members) < 2:
        return members
    hs = [headers[p] for p in members]
    by_position = all(h.position is not None for h in hs)
    by_instance = all(h.instance is not None for h in hs)
    return [p for _, p in sorted(
        zip(hs, members),
        key=lambda hp: (hp[0].position if by_position else 0.0,
                        hp[0].instance if by_instance else 0, hp[1].name))]
