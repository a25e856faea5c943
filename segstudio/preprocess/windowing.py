"""Intensity windowing: map raw values (HU for CT) or deep images to uint8."""

from __future__ import annotations

import numpy as np

from ..errors import DataError

# name -> (width, level), the usual radiology presets.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (80.0, 40.0),
    "subdural": (215.0, 75.0),
    "lung": (1500.0, -600.0),
    "mediastinum": (350.0, 50.0),
    "abdomen": (400.0, 40.0),
    "liver": (160.0, 60.0),
    "bone": (1800.0, 400.0),
}
MODES = ("auto", "file", "percentile")
PERCENTILES = (0.5, 99.5)


def parse_window(window: str) -> str | tuple[float, float]:
    """Validate a window setting: a mode from MODES, or (width, level) for a preset or "W/L"."""
    w = (window or "auto").strip().lower()
    if w in MODES:
        return w
    if w in WINDOW_PRESETS:
        return WINDOW_PRESETS[w]
    try:
        width, level = (float(p) for p in w.split("/"))
    except ValueError:
        width = 0.0
    else:
        if width > 0:
            return width, level
    raise DataError(f"Unknown window {window!r}: use auto, file, percentile, "
                    f"{', '.join(WINDOW_PRESETS)} or WIDTH/LEVEL such as 400/40")


def apply_window(values: np.ndarray, width: float, level: float) -> np.ndarray:
    """Linear window [level - width/2, level + width/2] -> 0..255 uint8 (values outside are clipped)."""
    lo = level - width / 2.0
    out = (values.astype(np.float32) - lo) * (255.0 / max(width, 1e-6))
    return np.clip(out, 0, 255).round().astype(np.uint8)


def percentile_window(values: np.ndarray) -> tuple[float, float]:
    """(width, level) spanning the 0.5th to 99.5th percentile of `values` (sampled when large)."""
    flat = values.ravel()
    lo, hi = np.percentile(flat[:: max(1, flat.size // 1_000_000)], PERCENTILES)
    return max(float(hi - lo), 1e-6), float(lo + hi) / 2.0


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Any numeric image -> uint8: uint8 unchanged, bool -> 0/255, else the 0.5-99.5 percentile range.

    Percentiles (not min/max) so a few hot or dead pixels do not flatten the contrast of
    16-bit and float images.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr)
    return apply_window(arr, *percentile_window(arr))


HU_RANGE = (-4096, 12287)  # HU kept as int16 for a window applied later (beyond: clipped)


def to_hu(values: np.ndarray) -> np.ndarray:
    """Modality values as int16 HU, rounded and clipped to HU_RANGE."""
    return np.clip(np.rint(values), *HU_RANGE).astype(np.int16)


class HUHistogram:
    """Hounsfield-unit counts (1 HU bins) over a dataset's CT images, in their masks' foreground
    and overall, for one window for the whole dataset: the 0.5-99.5 percentiles of the
    foreground, as nnU-Net normalises CT (all pixels when no mask has foreground)."""

    LOW, HIGH = HU_RANGE
    MIN_WIDTH, MARGIN = 20.0, 0.05  # HU; share of the width added on each side

    def __init__(self):
        self.foreground = np.zeros(self.HIGH - self.LOW + 1, np.int64)
        self.every = np.zeros_like(self.foreground)
        self.images = 0

    def add(self, hu: np.ndarray, foreground: np.ndarray | None = None) -> None:
        """One int16 HU frame, with a boolean map of its mask's foreground when there is one."""
        idx = np.clip(hu.astype(np.int32), self.LOW, self.HIGH) - self.LOW
        self.every += np.bincount(idx.ravel(), minlength=len(self.every))
        if foreground is not None and foreground.any():
            self.foreground += np.bincount(idx[foreground], minlength=len(self.foreground))
        self.images += 1

    def window(self) -> tuple[float, float, str]:
        """(width, level, what it was computed from)."""
        counts, source = ((self.foreground, "the masks' foreground") if self.foreground.any()
                          else (self.every, "all pixels"))
        cdf = np.cumsum(counts) / max(int(counts.sum()), 1)
        lo, hi = (int(np.searchsorted(cdf, q / 100.0)) + self.LOW for q in PERCENTILES)
        # nnU-Net clips to these percentiles; in 8 bits that would make the darkest foreground as
        # black as the clipped background, so the window reaches a little beyond them (and is at
        # least MIN_WIDTH wide, for foreground of nearly one value)
        width = max(float(hi - lo), self.MIN_WIDTH) * (1 + 2 * self.MARGIN)
        return width, (lo + hi) / 2.0, source


def format_window(width: float, level: float) -> str:
    """A "W/L" window setting that parse_window reads back."""
    return f"{width:.6g}/{level:.6g}"
