"""Slices of scans and resampling of planes: the one way training and prediction cut a (Z, Y, X)
volume into slices, put predicted slices back, and resize images, masks and values."""

from __future__ import annotations

import numpy as np
from PIL import Image

AXES = {"axial": 0, "coronal": 1, "sagittal": 2}  # canonical (Z, Y, X) axis a slice is taken across


def take_slice(volume: np.ndarray, axis: int, k: int) -> np.ndarray:
    """Slice `k` across canonical `axis` of a (..., Z, Y, X) array, as a viewer shows it: axial
    with anterior up; coronal and sagittal with superior up."""
    plane = np.take(volume, k, axis=volume.ndim - 3 + axis)
    return plane if axis == 0 else plane[..., ::-1, :]


def put_slice(volume: np.ndarray, axis: int, k: int, plane: np.ndarray) -> None:
    """The inverse of take_slice: write `plane` back as slice `k` of `volume` (Z, Y, X)."""
    index = [slice(None)] * 3
    index[axis] = k
    volume[tuple(index)] = plane if axis == 0 else plane[::-1, :]


def context_rows(rows: np.ndarray, first: np.ndarray | int, last: np.ndarray | int, context: int) -> np.ndarray:
    """(len(rows), 2 * context + 1): each row and its `context` neighbours on each side, clamped to
    its scan's rows [first, last] (2.5-D input: a slice with its neighbours as channels)."""
    rows = np.asarray(rows, dtype=np.int64)
    offsets = np.arange(-context, context + 1)
    return np.clip(rows[:, None] + offsets[None], np.asarray(first)[..., None], np.asarray(last)[..., None])


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


def resize_values(plane: np.ndarray, size: int) -> np.ndarray:
    """A slice of values (HU...) resized bilinearly to (size, size), as float32."""
    return resize_plane(np.asarray(plane, dtype=np.float32), size, Image.BILINEAR)


def resize_plane(plane: np.ndarray, size: int, method) -> np.ndarray:
    """One 2-D plane (uint8 or float32) resized to (size, size) with a PIL `method`."""
    if plane.shape == (size, size):
        return plane
    return np.asarray(Image.fromarray(np.ascontiguousarray(plane)).resize((size, size), method))


def scaled_shape(shape: tuple[int, ...], scale: float) -> tuple[int, int]:
    """(h, w) of an (H, W, ...) image scaled by `scale` (at least one pixel)."""
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))
