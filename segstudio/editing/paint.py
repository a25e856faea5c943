"""Paint operations on one label plane (H, W) uint8, in place: brush and eraser strokes, flood
fill (optionally limited to an intensity range of the image) and polygon fill. Each returns the
box it may have changed, (y0, y1, x0, x1), or None.

Written here rather than taken from a library because a stroke must cost microseconds per mouse
event on the GUI thread; PIL draws the polygons and scipy labels the fill regions."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

Box = tuple[int, int, int, int]


@lru_cache(maxsize=64)
def disc(radius: int) -> np.ndarray:
    """A boolean disc of `radius` pixels (radius 0: one pixel)."""
    r = max(int(radius), 0)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= r * r + r  # + r: round discs at small radii


def stamp(plane: np.ndarray, y: float, x: float, radius: int, value: int) -> Box | None:
    """Set a disc centred at (y, x) to `value`."""
    d = disc(radius)
    r = d.shape[0] // 2
    cy, cx = int(round(y)), int(round(x))
    h, w = plane.shape
    y0, y1, x0, x1 = max(cy - r, 0), min(cy + r + 1, h), max(cx - r, 0), min(cx + r + 1, w)
    if y0 >= y1 or x0 >= x1:
        return None
    plane[y0:y1, x0:x1][d[y0 - cy + r:y1 - cy + r, x0 - cx + r:x1 - cx + r]] = value
    return y0, y1, x0, x1


def line(plane: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: int,
         value: int) -> Box | None:
    """A brush segment from p0 to p1 ((y, x) points): discs spaced so that no gap shows."""
    (y0, x0), (y1, x1) = p0, p1
    steps = max(1, int(np.ceil(max(abs(y1 - y0), abs(x1 - x0)) / max(radius / 2, 0.5))))
    box = None
    for t in np.linspace(0.0, 1.0, steps + 1):
        box = union(box, stamp(plane, y0 + (y1 - y0) * t, x0 + (x1 - x0) * t, radius, value))
    return box


def fill_region(plane: np.ndarray, y: int, x: int, image: np.ndarray | None = None,
                tolerance: int = 0) -> np.ndarray | None:
    """The 4-connected region of equal labels around (y, x) (e.g. the inside of an outline), as a
    boolean map; None outside the plane. With an `image` (H, W) or (H, W, C) and a `tolerance` > 0,
    only pixels whose image value is within `tolerance` of the clicked pixel's (in every channel)
    belong to it: a fill of the background then stops where the tissue changes."""
    h, w = plane.shape
    if not (0 <= y < h and 0 <= x < w):
        return None
    same = plane == plane[y, x]
    if image is not None and tolerance > 0:
        values = np.asarray(image, dtype=np.int32)
        if values.shape[:2] != plane.shape:
            raise ValueError(f"image {values.shape[:2]} and labels {plane.shape} differ in size")
        diff = np.abs(values - values[y, x])
        same &= (diff.max(axis=-1) if diff.ndim == 3 else diff) <= tolerance
    regions, _ = ndimage.label(same)
    return regions == regions[y, x]


def paint_region(plane: np.ndarray, region: np.ndarray, value: int) -> Box | None:
    """Set the pixels of a boolean `region` to `value`."""
    rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    if not len(rows):
        return None
    plane[region] = value
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def fill(plane: np.ndarray, y: int, x: int, value: int, image: np.ndarray | None = None,
         tolerance: int = 0) -> Box | None:
    """Fill the region of fill_region(plane, y, x, image, tolerance) with `value`."""
    h, w = plane.shape
    if not (0 <= y < h and 0 <= x < w) or plane[y, x] == value:
        return None
    return paint_region(plane, fill_region(plane, y, x, image, tolerance), value)


def touches_border(region: np.ndarray) -> bool:
    return bool(region[0].any() or region[-1].any() or region[:, 0].any() or region[:, -1].any())


def polygon(plane: np.ndarray, points: list[tuple[float, float]], value: int) -> Box | None:
    """Fill the polygon (lasso) through the (y, x) `points`."""
    if len(points) < 3:
        return None
    h, w = plane.shape
    ys = [p[0] for p in points]
    xs = [p[1] for p in points]
    y0, y1 = max(int(np.floor(min(ys))), 0), min(int(np.ceil(max(ys))) + 1, h)
    x0, x1 = max(int(np.floor(min(xs))), 0), min(int(np.ceil(max(xs))) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return None
    canvas = Image.new("1", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(canvas).polygon([(px - x0, py - y0) for py, px in points], fill=1, outline=1)
    plane[y0:y1, x0:x1][np.asarray(canvas, dtype=bool)] = value
    return y0, y1, x0, x1


def union(a: Box | None, b: Box | None) -> Box | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
