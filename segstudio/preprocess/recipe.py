"""The recipe: from decoded pixels to the model's input, the same for training and prediction.

2-D frames (uint8 grey or RGB, or int16 HU for CT kept unwindowed) are resampled to the plan's
shape (S x S, or scaled for a patch run) and then, CT in HU, windowed: resized in HU first, the
window after. Scans are sliced across the plan's axis; CT slices are resized in HU, rounded to
whole HU and windowed, other scans windowed by their own percentiles first and resized after.
The training caches call the same steps (the 2-D cache resamples as it reads and windows once
the dataset's window is known), so the predictor feeds the model what training fed it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .plan import Plan
from .slicing import context_rows, resize_image, resize_plane, resize_values, take_slice
from .windowing import PERCENTILES, apply_window, parse_window, percentile_window, to_hu

CT_AIR = -500.0  # a scan whose low values reach this is in Hounsfield units (air is -1000)


def windowed(x: np.ndarray, window) -> np.ndarray:
    """An int16 HU image through `window` (parse_window's (width, level)); uint8 unchanged."""
    return apply_window(x, *window) if x.dtype == np.int16 else x


def image_input(image: np.ndarray, plan: Plan) -> np.ndarray:
    """(C, h, w) uint8 for one decoded 2-D frame ((H, W) or (H, W, 3) uint8, or (H, W) int16 HU):
    resampled to plan.image_shape, then CT windowed with the plan's window."""
    return windowed(resize_image(image, plan.image_shape(image.shape)), parse_window(plan.window))


def is_ct(volume, modalities: list[str]) -> bool:
    """CT by what the dataset says (dataset.json, MetaImage Modality), else by its values: a
    scan reaching air at about -1000 is in Hounsfield units. `volume`: an io Volume."""
    said = (modalities[0] if modalities else "") or volume.modality
    if said:
        return said.strip().upper() == "CT"
    sample = volume.array.ravel()[:: max(1, volume.array.size // 1_000_000)]
    return float(np.percentile(sample, PERCENTILES[0])) <= CT_AIR


def scan_windows(stack: np.ndarray, ct: bool) -> list[tuple[float, float]] | None:
    """Per channel of a (C, Z, Y, X) scan, the window its slices get before resizing: each
    channel's own percentiles; None for CT (resized in HU, then windowed: see scan_slice)."""
    return None if ct else [percentile_window(channel) for channel in stack]


def scan_slice(planes: np.ndarray, size: int, windows: list[tuple[float, float]] | None) -> np.ndarray:
    """(C, S, S) of one slice's (C, h, w) planes: with `windows` (scan_windows), windowed and
    resized to uint8; without, CT resized in HU and rounded to int16 HU (windowed) to apply the
    run's window to."""
    if windows is None:
        return to_hu(np.stack([resize_values(p, size) for p in planes]))
    return np.stack([resize_plane(apply_window(p, *w), size, Image.BILINEAR) for p, w in zip(planes, windows)])


def scan_input(volume, plan: Plan) -> np.ndarray:
    """(n, C, S, S) uint8 slices of a canonical scan (an io Volume) across the plan's axis:
    CT (by the plan's modalities, or the scan's values) through the run's HU window, other scans
    through their own percentiles."""
    stack = volume.array if volume.array.ndim == 4 else volume.array[None]
    window = parse_window(plan.window)
    ct = isinstance(window, tuple) and is_ct(volume, plan.modalities)
    windows = scan_windows(stack, ct)
    axis = plan.slice_axis
    n = stack.shape[1 + axis]
    out = np.empty((n, len(stack), plan.size, plan.size), np.uint8)
    for k in range(n):
        out[k] = windowed(scan_slice(take_slice(stack, axis, k), plan.size, windows), window)
    return out


def with_context(slices: np.ndarray, ks: np.ndarray, context: int) -> np.ndarray:
    """(len(ks), C * (2 * context + 1), S, S): slices `ks` of one scan's (n, C, S, S) slices,
    each with its neighbours as channels (clamped at the scan's ends), as training gathers them."""
    rows = context_rows(ks, 0, len(slices) - 1, context)
    return slices[rows.ravel()].reshape(len(ks), -1, *slices.shape[-2:])


def display_window(volume, plan: Plan) -> tuple[float, float]:
    """The window a scan is shown through: the run's HU window for CT (what the model sees),
    else the scan's own percentiles (its first channel)."""
    window = parse_window(plan.window)
    if isinstance(window, tuple) and is_ct(volume, plan.modalities):
        return window
    return percentile_window(volume.array[0] if volume.array.ndim == 4 else volume.array)
