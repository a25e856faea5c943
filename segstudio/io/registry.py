"""The reader registry: which format module reads a file, chosen by its content (a PNG named .dcm
is read as a PNG, DICOM without a preamble or an extension as DICOM, a NIfTI or NRRD file by its
header when its name does not say), and the entry points that read and write images.

Every format module has `can_read(path, head)` (`head`: the file's first bytes, b"" for a
folder) and `read(path, mask=..., ...)` returning a Volume (dicom_seg: its segments, a SegMask);
nifti, itk and dicom_seg `write` too. READERS lists them in the order they are asked.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np

from ..preprocess.windowing import to_uint8  # images as 8 bits on reading
from ..errors import DataError
from ..files import atomic_path
from . import dicom_file, dicom_seg, dicom_series, itk, nifti, raster
from .reasons import no_path
from .sniff import DICOM_EXTS, format_of, read_head
from .volume import Volume, check_same_geometry, native_labels

READERS = (dicom_series, nifti, itk, dicom_seg, dicom_file, raster)  # the first that can read a file reads it
IMAGE_READERS = (dicom_file, raster)   # 2-D files (read_image): between them, every file
SCAN_READERS = (dicom_series, nifti, itk)  # scans and label volumes (read_scan)
FORMATS = {**nifti.ENDINGS, **itk.ENDINGS}  # a scan file's name ending -> format
WRITERS = {"nifti": nifti, "nrrd": itk, "mha": itk}  # label volumes, by format
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # single files, so they can be written atomically
MIN_SIDE = 2  # smaller images cannot be segmented meaningfully


def reader_for(path: str | Path) -> ModuleType:
    """The format module that reads `path` (see READERS); DataError when the file cannot be
    opened or is empty."""
    path = Path(path)
    head = b"" if path.is_dir() else _head(path)
    return next(r for r in READERS if r.can_read(path, head))  # dicom_file or raster take any file


def read_image(path: str | Path, window: str | tuple[float, float] = "auto", mask: bool = False,
               defer_ct: bool = False) -> Volume:
    """A 2-D image file as a Volume of one slice per frame: an image (`mask=False`) as uint8,
    DICOM windowed (`window`: a parsed window; `defer_ct` keeps CT in HU, see
    dicom_file.read_dicom), or a mask as its raw stored values. A file whose three channels are
    equal is grey. Every failure is a DataError whose message is a one-line reason (no path)."""
    path = Path(path)
    head = _head(path)
    reader = next(r for r in IMAGE_READERS if r.can_read(path, head))
    options = dict(window=window, defer_ct=defer_ct) if reader is dicom_file else {}
    try:
        image = reader.read(path, mask=mask, **options)
    except DataError:
        raise
    except Exception as e:
        fmt = format_of(head)
        if not fmt:
            suffix = path.suffix.lower()
            kind = "DICOM" if suffix in DICOM_EXTS else suffix.lstrip(".").upper() or "DICOM"
            raise DataError(f"not a valid {kind} or other image file (unrecognised content)") from e
        raise DataError(f"cannot decode {fmt}: {no_path(e, path)}") from e
    array = image.array
    if array.ndim == 4 and (array[0] == array[1:]).all():
        image.array = array[0]
    if not mask:
        h, w = image.shape[1:]
        if min(h, w) < MIN_SIDE:
            raise DataError(f"image is {w}x{h} pixel(s); too small to segment "
                            f"(at least {MIN_SIDE}x{MIN_SIDE})")
        if not hu_frames(image) and image.array.dtype != np.uint8:
            image.array = Volume.from_frames([to_uint8(f) for f in image.frames]).array
    return image


def hu_frames(image: Volume) -> bool:
    """The frames are CT values in HU (int16), to be resized and then windowed."""
    return image.array.dtype == np.int16 and image.modality == "CT"


def read_scan(path: str | Path, *, mask: bool = False) -> Volume:
    """A scan in the canonical orientation, from a file (NIfTI, NRRD, MetaImage) or a folder (a
    DICOM series): an image as float32 (scaling applied), a mask (`mask=True`) as its exact
    integer labels. Every failure is a DataError with a one-line reason (no path)."""
    path = Path(path)
    return _scan_reader(path).read(path, mask=mask)


def read_geometry(path: str | Path) -> Volume:
    """A scan's canonical shape and affine from its header alone (no voxels decoded): the array
    is a zero-sized-memory placeholder of the right shape (a DICOM series folder is read whole).
    DataError as read_scan."""
    path = Path(path)
    reader = _scan_reader(path)
    if reader is dicom_series:
        return reader.read(path)
    try:
        return reader.read_geometry(path)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"cannot read the header ({no_path(e, path)})") from e


def read_channels(paths: list[str | Path]) -> Volume:
    """One image from one file per channel (nnU-Net's case_0000, case_0001...): (C, Z, Y, X).
    All channels must share the first one's geometry."""
    volumes = []
    for i, p in enumerate(paths):
        try:
            volumes.append(read_scan(p))
        except DataError as e:  # say which channel's file it was
            raise DataError(f"channel {i} ({Path(p).name}): {e}" if i else str(e)) from e
    first = volumes[0]
    for i, vol in enumerate(volumes[1:], 1):
        if (reason := check_same_geometry(first, vol, what=f"channel {i}")) is not None:
            raise DataError(reason)
    arrays = [v.array if v.array.ndim == 4 else v.array[None] for v in volumes]
    stacked = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return Volume(stacked, first.affine, first.spacing, [s for v in volumes for s in v.source],
                  first.format, first.orientation, first.modality, first.native)


def write_label_like(labels_canonical: np.ndarray, like: Volume, out_path: str | Path) -> Path:
    """Write a canonical (Z, Y, X) label map in the geometry of the file `like` was read from
    (same voxel order, affine / sform / qform, or spacing / origin / direction), as uint8 or
    uint16. The format follows `out_path`'s ending (.nii.gz, .nii, .nrrd, .mha); NIfTI output
    keeps the header of a NIfTI `like`. Written atomically."""
    out_path = Path(out_path)
    suffix = volume_suffix(out_path)
    if suffix not in LABEL_SUFFIXES:
        raise ValueError(f"cannot write labels to {out_path.name}: use {', '.join(LABEL_SUFFIXES)}")
    data = native_labels(labels_canonical, like)
    with atomic_path(out_path, suffix) as tmp:
        WRITERS[FORMATS[suffix]].write(data, like.native, tmp)
    return out_path


def volume_suffix(path: str | Path) -> str:
    """The scan file ending of `path` (".nii.gz", ".nrrd"...), or ""."""
    name = Path(path).name.lower()
    return next((s for s in FORMATS if name.endswith(s)), "")


def volume_stem(path: str | Path) -> str:
    """The name without its scan ending: "a.nii.gz" -> "a" (Path.stem would give "a.nii")."""
    path = Path(path)
    suffix = volume_suffix(path)
    return path.name[:-len(suffix)] if suffix else path.stem


def is_volume_file(path: str | Path) -> bool:
    """A visible file with a scan ending (macOS "._*" resource forks are hidden files)."""
    path = Path(path)
    return not path.name.startswith(".") and bool(volume_suffix(path)) and path.is_file()


def volume_files(folder: str | Path) -> list[Path]:
    """Scan files directly in `folder` (not recursive), sorted by name."""
    return sorted((p for p in Path(folder).iterdir() if is_volume_file(p)), key=lambda p: p.name)


def _head(path: Path) -> bytes:
    """The file's first bytes; DataError when it cannot be opened or is empty."""
    try:
        head = read_head(path)
    except OSError as e:
        raise DataError(f"cannot open file ({e.strerror or e})") from e
    if not head:
        raise DataError("empty file (0 bytes)")
    return head


def _scan_reader(path: Path) -> ModuleType:
    head = b"" if path.is_dir() else _head(path)
    reader = next((r for r in SCAN_READERS if r.can_read(path, head)), None)
    if reader is None:
        raise DataError(f"not a volume file (expected {', '.join(FORMATS)})")
    return reader
