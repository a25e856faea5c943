"""DICOM headers for pairing and ordering: series grouping and slice order.

Slices of a series are ordered by ImagePositionPatient projected on the slice normal (the cross
product of the ImageOrientationPatient row and column directions), else by InstanceNumber.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import SegmentationStorage

from .dicom import open_capped, quiet
from .discovery import looks_dicom, sniff_format

_TAGS = ["SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "InstanceNumber",
         "ImagePositionPatient", "ImageOrientationPatient", "NumberOfFrames"]


@dataclass(frozen=True)
class DicomHeader:
    sop_class: str
    sop_uid: str
    series_uid: str
    position: float | None  # along the slice normal, in mm
    instance: int | None
    frames: int

    @property
    def is_seg(self) -> bool:
        return self.sop_class == SegmentationStorage


def read_header(path: Path) -> DicomHeader | None:
    """The header fields used for pairing and ordering; None for files that are not DICOM."""
    try:
        fmt = sniff_format(path)
        if not looks_dicom(fmt, path):
            return None
        with quiet(), open_capped(path) as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True, force=True, specific_tags=_TAGS)
            if "SOPInstanceUID" not in ds and "SeriesInstanceUID" not in ds:
                return None
            return DicomHeader(str(ds.get("SOPClassUID", "") or ""),
                               str(ds.get("SOPInstanceUID", "") or ""),
                               str(ds.get("SeriesInstanceUID", "") or ""),
                               _position(ds), _number(ds.get("InstanceNumber")),
                               max(1, _number(ds.get("NumberOfFrames")) or 1))
    except Exception:  # unreadable headers are reported when the file is decoded
        return None


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


def _position(ds: pydicom.Dataset) -> float | None:
    try:
        orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
        position = np.asarray(ds.ImagePositionPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        value = float(normal @ position)
    except (AttributeError, ValueError, TypeError):
        return None
    return value if np.isfinite(value) and normal.any() else None


def _number(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
