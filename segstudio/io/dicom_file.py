"""One DICOM file via pydicom: every transfer syntax with a decoder plugin (pylibjpeg, pyjpegls),
grey, RGB, YBR and palette colour, modality LUT (HU), windowing, frames, patient groups; and the
header fields that pair and order files (series, slice position, SEG or image).

Header problems are caught before decoding: non-image objects, truncated pixel data and
declared sizes too large to allocate. Identifying fields are never returned: the patient is
only a short hash of PatientID. pydicom's warnings (which may quote element values) are muted.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import struct
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import generate_frames
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.uid import (UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         SegmentationStorage)

from ..preprocess.windowing import apply_window, percentile_window, to_hu  # windowed on reading
from ..errors import DataError
from .reasons import first_line
from .sniff import format_of, looks_dicom, sniff_format
from .volume import Volume

PATIENT_PREFIX = "patient-"
MAX_VALUES = 1 << 28  # decoded samples (rows x columns x frames x samples) we agree to allocate
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# JPEG start-of-frame markers (baseline, extended, lossless...; 0xF7 is JPEG-LS)
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}

logging.getLogger("pydicom").setLevel(logging.ERROR)  # its warnings may quote element values


@dataclass
class DicomFrames:
    frames: list[np.ndarray]  # uint8 (H, W) / (H, W, 3), raw stored values when read raw, or
                              # int16 HU when a CT window is deferred to the dataset
    group: str                # "patient-<hash of PatientID>", or "" without a PatientID
    window: str               # "file", "percentile", "W/L", DEFERRED or "" (colour / raw)
    modality: str = ""        # "CT", "MR"... ("" when the file does not say)


DEFERRED = "dataset"  # read_dicom(defer_ct=True): CT frames come back in HU, windowed later
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


def is_ct(ds: pydicom.Dataset) -> bool:
    """CT, or values the file says are Hounsfield units: the only images HU windows apply to."""
    return (str(ds.get("Modality", "")).upper() == "CT"
            or str(ds.get("RescaleType", "")).upper() == "HU")


@contextmanager
def quiet():
    """Mute pydicom's warnings about non-conformant files (they are reported otherwise)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class _CappedReader(io.BufferedReader):
    """Large reads are capped at the bytes left, so a corrupt length field cannot make Python
    allocate gigabytes before finding the file too short."""

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 1 << 20:
            size = min(size, max(0, os.fstat(self.fileno()).st_size - self.tell()))
        return super().read(size)


def open_capped(path: Path) -> io.BufferedReader:
    """`path` opened for pydicom (see _CappedReader)."""
    return _CappedReader(io.FileIO(path, "rb"))


def patient_group(ds: pydicom.Dataset) -> str:
    """A short, non-reversible group id for the file's PatientID ("" when it has none)."""
    pid = str(ds.get("PatientID", "") or "").strip()
    return PATIENT_PREFIX + hashlib.sha256(pid.encode("utf-8")).hexdigest()[:10] if pid else ""


def can_read(path: Path, head: bytes) -> bool:
    """DICOM by its preamble, or content of no known format without a raster extension (DICOM
    without a preamble)."""
    return looks_dicom(format_of(head), path)


def read(path: Path, *, window: str | tuple[float, float] = "auto", mask: bool = False,
         defer_ct: bool = False) -> Volume:
    """The file's frames as the slices of a Volume (see read_dicom; `mask` reads raw values),
    with its patient group, window and modality."""
    d = read_dicom(path, window, raw=mask, force=sniff_format(path) != "DICOM", defer_ct=defer_ct)
    return Volume.from_frames(d.frames, source=[str(path)], format="dicom", modality=d.modality,
                              group=d.group, window=d.window)


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


def read_dicom(path: Path, window: str | tuple[float, float], raw: bool = False,
               force: bool = False, defer_ct: bool = False) -> DicomFrames:
    """Decode every frame. `window` is a parsed window (see windowing.parse_window); `raw` keeps
    the stored values (for label masks). `force` reads files without the DICM preamble.
    `defer_ct` returns CT frames in HU (int16) when the window is "auto" (a window chosen over
    the whole dataset) or a fixed W/L: the caller resizes them first and windows then, the one
    order training and prediction share. A fixed W/L applies to CT only; other modalities get
    their own window or percentiles.

    Raises DataError with a short reason for files that are not images or cannot be decoded.
    """
    with quiet(), open_capped(path) as f:
        ds = pydicom.dcmread(f, force=force)
        check_image(ds, force)
        try:
            arr = ds.pixel_array
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # Rust-based plugins (pylibjpeg-rle) panic with BaseException
            raise DataError(_decode_error(ds, e)) from e
    frames = arr if _int(ds, "NumberOfFrames", 1) > 1 else arr[None]
    group = patient_group(ds)
    modality = str(ds.get("Modality", "") or "").strip().upper()
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if raw:
        return DicomFrames(list(frames), group, "", modality)
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frames, ds)
        return DicomFrames(list(rgb >> 8 if rgb.dtype == np.uint16 else rgb), group, "", modality)
    if frames.ndim == 4:  # RGB (YBR is converted by pydicom): scale by the stored bit depth
        return DicomFrames(list(_colour_to_uint8(frames, _int(ds, "BitsStored", 8))), group, "",
                           modality)
    values = to_modality_units(frames, ds)
    if defer_ct and window != "file" and window != "percentile" and is_ct(ds) and photometric != "MONOCHROME1":
        hu = to_hu(values)
        used = f"{window[0]:g}/{window[1]:g}" if isinstance(window, tuple) else DEFERRED
        return DicomFrames(list(hu), group, used, modality or "CT")
    (width, level), used = _choose_window(values, ds, window)
    out = apply_window(values, width, level)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return DicomFrames(list(out), group, used, modality)


def check_image(ds: pydicom.Dataset, force: bool = False) -> None:
    """DataError unless `ds` is an image whose pixel data can safely be decoded."""
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise DataError(_no_pixels_reason(ds, force))
    if ds.get("SOPClassUID") == SegmentationStorage:
        raise DataError("DICOM SEG (a segmentation, not an image)")
    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    frames, samples = _int(ds, "NumberOfFrames", 1), _int(ds, "SamplesPerPixel", 1)
    if "Rows" not in ds or "Columns" not in ds:
        raise DataError("pixel data without Rows/Columns in the header")
    if rows < 1 or cols < 1 or frames < 1 or samples < 1:
        raise DataError(f"invalid image size in the header ({cols}x{rows}, {frames} frame(s))")
    n = rows * cols * frames * samples
    if n > MAX_VALUES:
        raise DataError(f"declared image size {cols}x{rows} x {frames} frame(s) is too large "
                        f"({n / 1e6:,.0f} million values, limit {MAX_VALUES / 1e6:.0f} million); "
                        "not decoded")
    if "TransferSyntaxUID" not in ds.file_meta:  # no file meta: decode as it was read
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    syntax = ds.file_meta.TransferSyntaxUID
    if "PixelData" in ds and syntax.is_transfer_syntax and syntax.is_encapsulated:
        for frame in generate_frames(ds.PixelData, number_of_frames=frames):
            size = codestream_size(frame)
            if size and size[0] * size[1] > rows * cols:
                raise DataError(f"compressed frame declares {size[1]}x{size[0]} pixels but the "
                                f"header {cols}x{rows}; not decoded")
    if "PixelData" in ds and syntax.is_transfer_syntax and not syntax.is_compressed:
        expected = math.ceil(n * _int(ds, "BitsAllocated", 8) / 8)
        if ds.get("PhotometricInterpretation") == "YBR_FULL_422":  # chroma at half width
            expected = expected * 2 // 3
        got = len(ds.PixelData or b"")
        if got < expected:
            raise DataError(f"truncated pixel data ({got:,} of {expected:,} bytes)")


def codestream_size(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG, JPEG-LS or JPEG 2000 frame declares (decoders allocate that much,
    whatever the DICOM header says); None for other data."""
    if frame[:4] == b"\xff\x4f\xff\x51" and len(frame) >= 24:  # J2K: SOC, then SIZ
        width, height, x0, y0 = struct.unpack(">4I", frame[8:24])
        return max(0, height - y0), max(0, width - x0)
    pos = 2 if frame[:2] == b"\xff\xd8" else len(frame)
    while pos + 9 <= len(frame) and frame[pos] == 0xFF:
        marker = frame[pos + 1]
        if marker in _SOF_MARKERS:
            return struct.unpack(">HH", frame[pos + 5:pos + 9])
        pos += 2 + struct.unpack(">H", frame[pos + 2:pos + 4])[0]
    return None


def to_modality_units(frames: np.ndarray, ds: pydicom.Dataset, start: int = 0) -> np.ndarray:
    """Stored values -> modality units (HU for CT) via the LUT or RescaleSlope/Intercept, which
    enhanced multi-frame files may give per frame; `frames` begin at frame `start` of `ds`."""
    if "ModalityLUTSequence" in ds:
        return apply_modality_lut(frames, ds).astype(np.float32)
    out = frames.astype(np.float32)
    n = len(frames) if frames.ndim == 3 else 1
    slopes, intercepts = np.ones(n, np.float32), np.zeros(n, np.float32)
    for i in range(n):
        item = _frame_item(ds, start + i, "PixelValueTransformationSequence")
        slopes[i] = float(item.get("RescaleSlope", 1) or 1)
        intercepts[i] = float(item.get("RescaleIntercept", 0) or 0)
    shape = (-1, 1, 1) if frames.ndim == 3 else ()
    if np.any(slopes != 1):
        out *= slopes.reshape(shape)
    if np.any(intercepts != 0):
        out += intercepts.reshape(shape)
    return out


def _choose_window(values: np.ndarray, ds: pydicom.Dataset,
                   window: str | tuple[float, float]) -> tuple[tuple[float, float], str]:
    """((width, level), how it was chosen) for a parsed window setting; a fixed W/L is for CT
    only, so other images fall back to "auto"."""
    if isinstance(window, tuple) and is_ct(ds):
        return window, f"{window[0]:g}/{window[1]:g}"
    if window != "percentile":
        item = _frame_item(ds, 0, "FrameVOILUTSequence")
        width, center = item.get("WindowWidth"), item.get("WindowCenter")
        if width is not None and center is not None and float(_first(width)) > 0:
            return (float(_first(width)), float(_first(center))), "file"
    return percentile_window(values), "percentile"


def _frame_item(ds: pydicom.Dataset, frame: int, sequence: str) -> pydicom.Dataset:
    """The dataset itself when it holds the top-level attributes, else the functional group
    item (per-frame, else shared) of `sequence` for `frame`."""
    for seq, index in (("PerFrameFunctionalGroupsSequence", frame),
                       ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(seq) or []
        if index < len(groups) and groups[index].get(sequence):
            return groups[index].get(sequence)[0]
    return ds


def _colour_to_uint8(frames: np.ndarray, bits: int) -> np.ndarray:
    if frames.dtype == np.uint8:
        return frames
    scale = 255.0 / (2.0 ** min(max(bits, 1), 32) - 1)
    return np.clip(frames.astype(np.float64) * scale, 0, 255).round().astype(np.uint8)


def _no_pixels_reason(ds: pydicom.Dataset, force: bool) -> str:
    sop = str(ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID") or "")
    name = UID(sop).name if sop else ""
    if "Rows" in ds or "BitsAllocated" in ds or name.endswith("Image Storage"):
        return f"no pixel data ({name or 'an image header'} without pixels: truncated file?)"
    if sop:
        return f"no pixel data ({name})" if name != sop else "no pixel data (not an image)"
    if force:
        return "not a DICOM or image file (unrecognised content)"
    if len(ds) == 0:
        return "truncated or corrupt DICOM file (no data elements)"
    return "no pixel data (DICOM file without an image)"


def _decode_error(ds: pydicom.Dataset, exc: BaseException) -> str:
    syntax = UID(str(ds.file_meta.TransferSyntaxUID)).name
    return f"cannot decode {syntax} pixel data: {first_line(exc)}"


def _int(ds: pydicom.Dataset, keyword: str, default: int) -> int:
    value = ds.get(keyword, default)
    try:
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        raise DataError(f"invalid {keyword} in the header") from None


def _first(value):
    """First of a multi-valued element (WindowCenter may list several windows)."""
    return value[0] if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else value


@dataclass
class ModalityFrame:
    """One grayscale DICOM frame for a viewer's window/level."""

    values: np.ndarray           # float32 (H, W) in modality units (HU for CT)
    window: tuple[float, float]  # (width, level) the dataset's window setting gives this frame
    unit: str                    # "HU" for CT, else ""


def read_modality_frame(path: str | Path, frame: int,
                        window: str | tuple[float, float]) -> ModalityFrame | None:
    """Frame `frame` of a MONOCHROME2 DICOM file in modality units, with its window; None for
    other files (not DICOM, colour, MONOCHROME1) and for files that cannot be decoded."""
    path = Path(path)
    try:
        if sniff_format(path) != "DICOM":
            return None
        with quiet(), open_capped(path) as f:
            ds = pydicom.dcmread(f)
            check_image(ds)
            if str(ds.get("PhotometricInterpretation", "")).strip() != "MONOCHROME2":
                return None
            arr = ds.pixel_array
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # decoders may panic with BaseException; the caller falls back to 8 bits
        return None
    frames = arr if _int(ds, "NumberOfFrames", 1) > 1 else arr[None]
    if not 0 <= frame < len(frames) or frames.ndim != 3:
        return None
    values = to_modality_units(frames[frame:frame + 1], ds, start=frame)[0]
    (width, level), _ = _choose_window(values, ds, window)
    unit = "HU" if str(ds.get("Modality", "")).upper() == "CT" else ""
    return ModalityFrame(values, (float(width), float(level)), unit)


def _position(ds: pydicom.Dataset) -> float | None:
    """ImagePositionPatient projected on the slice normal (the cross product of the
    ImageOrientationPatient row and column directions), in mm."""
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
