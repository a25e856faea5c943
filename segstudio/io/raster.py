"""PNG, JPEG, TIFF and BMP files: their frames as the slices of a Volume (values untouched,
alpha dropped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from .sniff import RASTER_EXTS, format_of, sniff_format
from .volume import Volume

FORMATS = ("PNG", "JPEG", "TIFF", "BMP")  # as sniff.format_of names them
_AS_IS = {"1", "L", "I", "F", "RGB"}


def can_read(path: Path, head: bytes) -> bool:
    """Content of a raster format, or of no known format with a raster extension (the decoder
    then says what is wrong with it)."""
    fmt = format_of(head)
    return fmt in FORMATS or (not fmt and path.suffix.lower() in RASTER_EXTS)


def read(path: Path, *, mask: bool = False) -> Volume:
    """The file's frames (see read_frames) as the slices of a Volume."""
    fmt = sniff_format(path)
    return Volume.from_frames(read_frames(path, fmt, mask), source=[str(path)], format=fmt.lower())


def read_frames(path: Path, fmt: str, mask: bool = False) -> list[np.ndarray]:
    """Frames of a raster file as (H, W) or (H, W, 3) arrays of the file's own dtype; a palette
    mask (`mask=True`) as its palette indices, the class values (as Pascal VOC stores them).

    TIFF goes through tifffile (16-bit RGB, stacks: one frame per page), falling back to
    pillow for compressions tifffile cannot decode; everything else through pillow.
    """
    if fmt == "TIFF":
        try:
            return _read_tiff(path)
        except Exception:  # e.g. a JPEG-compressed TIFF without imagecodecs: try pillow
            pass
    with Image.open(path) as im:
        return [np.asarray(im) if mask and im.mode == "P" else pil_to_array(im)]


def pil_to_array(im: Image.Image) -> np.ndarray:
    """A decoded pillow image as (H, W) or (H, W, 3); palettes become RGB, alpha is dropped."""
    if im.mode in _AS_IS or im.mode.startswith("I;16"):
        return np.asarray(im)
    if im.mode in ("LA", "RGBA", "RGBX"):
        return np.asarray(im)[..., 0 if im.mode == "LA" else slice(0, 3)]
    return np.asarray(im.convert("RGB"))


def _read_tiff(path: Path) -> list[np.ndarray]:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        arr, axes = series.asarray(), series.axes
    colour = "S" in axes and arr.shape[axes.index("S")] >= 3
    if "S" in axes:  # samples (colour channels) last; RGBA -> RGB, gray+alpha -> gray
        arr = np.moveaxis(arr, axes.index("S"), -1)
        arr = arr[..., :3] if colour else arr[..., 0]
    return list(arr.reshape(-1, *arr.shape[-3 if colour else -2:]))
