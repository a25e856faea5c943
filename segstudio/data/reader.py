"""One entry point for reading any supported file as frames, plus resizing to the cache size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .dicom import first_line, read_dicom
from .discovery import DICOM_EXTS, looks_dicom, sniff_format
from .raster import read_raster
from .windowing import parse_window, to_uint8

MIN_SIDE = 2  # smaller images cannot be segmented meaningfully


@dataclass
class ImageFile:
    frames: list[np.ndarray]  # images: uint8 (H, W) / (H, W, 3), or int16 HU (see hu_frames);
                              # masks: raw values
    group: str = ""           # hashed PatientID for DICOM with one
    window: str = ""          # how a grayscale DICOM image was windowed
    modality: str = ""        # DICOM Modality ("" for other files)


def read_file(path: Path, window: str | tuple[float, float] = "auto", mask: bool = False,
              defer_ct: bool = False) -> ImageFile:
    """Read an image (`mask=False`: uint8, DICOM windowed) or a mask (raw stored values).

    The format comes from the content, so a PNG named .dcm still reads. Every failure is a
    DataError whose message is a one-line reason (no path). `defer_ct`: see dicom.read_dicom.
    """
    try:
        fmt = sniff_format(path)
    except OSError as e:
        raise DataError(f"cannot open file ({e.strerror or e})") from e
    if fmt == "EMPTY":
        raise DataError("empty file (0 bytes)")
    suffix = path.suffix.lower()
    try:
        if looks_dicom(fmt, path):
            d = read_dicom(path, window, raw=mask, force=fmt != "DICOM", defer_ct=defer_ct)
            out = ImageFile(d.frames, d.group, d.window, d.modality)
        else:
            out = ImageFile(read_raster(path, fmt, mask=mask))
    except DataError:
        raise
    except Exception as e:
        if not fmt:
            kind = "DICOM" if suffix in DICOM_EXTS else suffix.lstrip(".").upper() or "DICOM"
            raise DataError(f"not a valid {kind} or other image file (unrecognised content)") from e
        raise DataError(_reason(fmt, e)) from e
    if not out.frames:
        raise DataError("no image frames in the file")
    out.frames = [_gray_if_equal(f) for f in out.frames]
    if not mask:
        h, w = out.frames[0].shape[:2]
        if min(h, w) < MIN_SIDE:
            raise DataError(f"image is {w}x{h} pixel(s); too small to segment "
                            f"(at least {MIN_SIDE}x{MIN_SIDE})")
        if not hu_frames(out):
            out.frames = [to_uint8(f) for f in out.frames]
    return out


def hu_frames(image: ImageFile) -> bool:
    """The frames are CT values in HU (int16), to be resized and then windowed."""
    return bool(image.frames) and image.frames[0].dtype == np.int16 and image.modality == "CT"


def read_image_frames(path: str | Path, window: str = "auto") -> list[tuple[str, np.ndarray]]:
    """Any supported image -> [(name, uint8 (H, W) or (H, W, 3))], one entry per DICOM frame.

    Names are the file stem, plus "#<frame>" for multi-frame files. Raises DataError.
    """
    path = Path(path)
    spec = parse_window(window)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frames = read_file(path, spec).frames
    except DataError as e:
        raise DataError(f"{path.name}: {e}") from e
    return [(frame_name(path, i, len(frames)), f) for i, f in enumerate(frames)]


def frame_name(path: Path, frame: int, n_frames: int) -> str:
    return f"{path.stem}#{frame}" if n_frames > 1 else path.stem


def resize_image(arr: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(H, W) or (H, W, 3) uint8 -> (C, S, S) uint8 (or (C, h, w) for a `size` of (h, w)),
    bilinear (a square size does not keep the aspect ratio); an (H, W) int16 HU frame keeps its
    values (resampled in float, rounded)."""
    h, w = (size, size) if isinstance(size, int) else size
    if arr.shape[:2] != (h, w):
        if arr.dtype == np.int16:
            big = Image.fromarray(arr.astype(np.float32)).resize((w, h), Image.BILINEAR)
            arr = np.rint(np.asarray(big)).astype(np.int16)
        else:
            arr = np.asarray(Image.fromarray(arr).resize((w, h), Image.BILINEAR))
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 class or label indices -> (S, S) (or (h, w)) uint8, nearest neighbour."""
    h, w = (size, size) if isinstance(size, int) else size
    if mask.shape[:2] == (h, w):
        return mask
    return np.asarray(Image.fromarray(mask).resize((w, h), Image.NEAREST))


def scaled_shape(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(h, w) of an (H, W, ...) image scaled by `scale` (at least one pixel)."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _gray_if_equal(arr: np.ndarray) -> np.ndarray:
    """An RGB frame whose three channels are identical is grayscale."""
    if arr.ndim == 3 and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
        return np.ascontiguousarray(arr[..., 0])
    return arr


def _reason(fmt: str, exc: Exception) -> str:
    return f"cannot decode {fmt}: {first_line(exc)}"
