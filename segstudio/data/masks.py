"""Mask conventions: binary 0/255 or 0/1, label images, RGB/palette colours -> class indices.

Each mask frame is first reduced to its distinct values ("keys": ints, or (r, g, b) colours) and a
local index image; `build_classes` then maps the union of keys over the dataset to class indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .report import ClassInfo

MAX_LABELS = 32  # more distinct values than this is not a label image
NAME_FILES = ("classes.txt", "codes.txt")


@dataclass
class MaskFrame:
    keys: list            # sorted distinct values: ints (gray) or (r, g, b) tuples (colour)
    counts: list[int]     # pixels per key
    local: np.ndarray     # (H, W) uint8 index into keys
    thresholded: bool = False  # a JPEG-like 0/255 mask thresholded at 128

    @property
    def colour(self) -> bool:
        return bool(self.keys) and isinstance(self.keys[0], tuple)


@dataclass
class ClassMap:
    codes: list[str]
    convention: str
    index: dict           # key -> class index
    values: list[str]     # original value(s) per class, for the report
    notes: list[str]
    colour: bool = False  # keys are (r, g, b); gray frames map through (v, v, v)

    def lut(self, frame: MaskFrame) -> np.ndarray:
        """Local index -> class index lookup table for one frame."""
        return np.array([self.index[_as_colour(k) if self.colour else k] for k in frame.keys],
                        dtype=np.uint8)

    def class_info(self, frames: list[MaskFrame]) -> list[ClassInfo]:
        """Per-class pixel share over `frames`."""
        counts = np.zeros(len(self.codes), dtype=np.int64)
        for f in frames:
            np.add.at(counts, self.lut(f), np.asarray(f.counts, dtype=np.int64))
        total = max(int(counts.sum()), 1)
        return [ClassInfo(i, name, self.values[i], float(counts[i]) / total)
                for i, name in enumerate(self.codes)]


def analyse_mask(arr: np.ndarray) -> MaskFrame:
    """Distinct values and local index image of one raw mask frame; DataError if not a label mask."""
    if arr.ndim == 3:
        if arr.dtype != np.uint8:
            raise DataError(f"colour mask with {arr.dtype} samples; expected 8-bit colours")
        packed = (arr[..., 0].astype(np.uint32) << 16) | (arr[..., 1].astype(np.uint32) << 8) | arr[..., 2]
        uniq, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
        if len(uniq) > MAX_LABELS:
            raise DataError(f"mask has {len(uniq)} distinct colours; expected a few class colours")
        keys = [(int(u >> 16), int(u >> 8 & 255), int(u & 255)) for u in uniq]
        return MaskFrame(keys, counts.tolist(), inverse.reshape(arr.shape[:2]).astype(np.uint8))
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise DataError("mask has non-integer values; expected class labels")
        arr = arr.astype(np.int64)
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    keys, counts, local = _distinct(arr)
    if len(keys) <= MAX_LABELS:
        return MaskFrame(keys, counts, local)
    if _jpeg_like(arr):
        keys, counts, local = _distinct((arr >= 128).astype(np.uint8) * 255)
        return MaskFrame(keys, counts, local, thresholded=True)
    raise DataError(f"mask has {len(keys)} distinct values; expected a few class labels")


def read_class_names(masks_dir: Path) -> tuple[list[str] | None, str]:
    """Names from classes.txt / codes.txt in the mask folder (one per line, index order)."""
    for name in NAME_FILES:
        p = masks_dir / name
        if p.is_file():
            lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
            names = [s.strip() for s in lines if s.strip()]
            if names:
                return names, name
    return None, ""


def build_classes(frames: list[MaskFrame], names: list[str] | None = None,
                  names_file: str = "") -> ClassMap:
    """Decide the dataset's mask convention and class list from all usable mask frames."""
    notes = []
    if any(f.thresholded for f in frames):
        notes.append("JPEG-like masks (values near 0 and 255) thresholded at 128")
    if any(f.colour for f in frames):
        cmap = _colour_classes(frames)
    else:
        keys = sorted({k for f in frames for k in f.keys} | {0})
        kinds = sorted({_binary_kind(f.keys) for f in frames} - {"empty"}, key=str)
        binary = None not in kinds
        convention = _gray_convention(kinds, keys)
        if names and keys[-1] < len(names):  # the names file numbers the values
            cmap = ClassMap(list(names), convention, {k: k for k in keys},
                            [str(i) for i in range(len(names))], [])
            names = None
        elif binary:
            value = "/".join(k.split("/")[1] for k in kinds) or "255"
            cmap = ClassMap(["background", "foreground"], convention,
                            {k: int(k != 0) for k in keys}, ["0", value], [])
        else:
            cmap = ClassMap(["background"] + [f"class {k}" for k in keys[1:]], convention,
                            {k: i for i, k in enumerate(keys)}, [str(k) for k in keys], [])
    if len(cmap.codes) > 255:
        raise DataError(f"{len(cmap.codes)} classes found; at most 255 are supported")
    if names:
        if len(names) != len(cmap.codes):
            notes.append(f"{names_file} has {len(names)} names for {len(cmap.codes)} classes")
        cmap.codes = names[:len(cmap.codes)] + cmap.codes[len(names):]
    if names_file:
        notes.append(f"class names from {names_file}")
    cmap.notes = notes + cmap.notes
    return cmap


def _colour_classes(frames: list[MaskFrame]) -> ClassMap:
    black = (0, 0, 0)
    keys = sorted({_as_colour(k) for f in frames for k in f.keys} - {black})
    index = {k: i for i, k in enumerate([black] + keys)}
    values = ["#%02x%02x%02x" % k for k in [black] + keys]
    notes = [] if all(f.colour for f in frames) else ["grayscale masks read as gray colours"]
    return ClassMap(["background"] + [f"class {v}" for v in values[1:]],
                    f"RGB colours ({len(keys)} + black background)", index, values, notes,
                    colour=True)


def _as_colour(key) -> tuple:
    return key if isinstance(key, tuple) else (key, key, key)


def _binary_kind(keys: list[int]) -> str | None:
    """"0/1", "0/255", "empty" (background only) or None for a frame's distinct values."""
    s = set(keys) - {0}
    return {frozenset(): "empty", frozenset({1}): "0/1", frozenset({255}): "0/255"}.get(frozenset(s))


def _gray_convention(kinds: list, keys: list[int]) -> str:
    if None in kinds:
        return "label image values " + ",".join(str(k) for k in keys)
    return "binary " + " and ".join(kinds) if kinds else "binary (no foreground in any mask)"


def _distinct(arr: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """Sorted distinct integer values, their counts and the (uint8-capped) local index image."""
    if arr.dtype.kind in "ui" and arr.size and arr.min() >= 0 and arr.max() < 65536:
        counts = np.bincount(arr.ravel(), minlength=1)
        keys = np.flatnonzero(counts)
        if len(keys) > MAX_LABELS:
            return keys.tolist(), counts[keys].tolist(), arr
        lut = np.zeros(len(counts), dtype=np.uint8)
        lut[keys] = np.arange(len(keys))
        return keys.tolist(), counts[keys].tolist(), lut[arr]
    keys, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    local = inverse.reshape(arr.shape).astype(np.uint8) if len(keys) <= MAX_LABELS else arr
    return keys.tolist(), counts.tolist(), local


def _jpeg_like(arr: np.ndarray) -> bool:
    """Most pixels near 0 or 255: a lossy-compressed binary mask."""
    if arr.min() < 0 or arr.max() > 255:
        return False
    near = np.count_nonzero((arr <= 48) | (arr >= 207))
    return near >= 0.95 * arr.size
