"""A file's frames with their names, and resizing frames to the cache size (the reading itself
is io.registry's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from ..io.registry import read_image
from .windowing import parse_window


def read_image_frames(path: str | Path, window: str = "auto") -> list[tuple[str, np.ndarray]]:
    """Any supported image -> [(name, uint8 (H, W) or (H, W, 3))], one entry per DICOM frame.

    Names are the file stem, plus "#<frame>" for multi-frame files. Raises DataError.
    """
    path = Path(path)
    spec = parse_window(window)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frames = read_image(path, spec).frames
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
