"""Mask colouring and the review's overlays (pure numpy; colours from segstudio.palette), and
numpy -> QImage/QPixmap conversion for thumbnails and tiles."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap

from segstudio.palette import class_colours, compare_colours, compare_map

GT_OUTLINE = (255, 255, 255)  # the ground truth's outline over a prediction
_LUT = class_colours(256)  # class index -> RGB: the colours of the exported *_color.png masks


def class_color(index: int) -> tuple[int, int, int]:
    """The colour of class `index` (background black), as the exported colour masks use it."""
    return tuple(int(c) for c in _LUT[max(0, min(int(index), 255))])


def contour(mask: np.ndarray) -> np.ndarray:
    """Boolean map of pixels on the edge of their class region (4-neighbourhood)."""
    m = np.asarray(mask)
    edge = np.zeros(m.shape, dtype=bool)
    edge[1:, :] |= m[1:, :] != m[:-1, :]
    edge[:-1, :] |= m[:-1, :] != m[1:, :]
    edge[:, 1:] |= m[:, 1:] != m[:, :-1]
    edge[:, :-1] |= m[:, :-1] != m[:, 1:]
    return edge & (m > 0)


def colorize(mask: np.ndarray, alpha: int = 255, outline: bool = False,
             visible: set[int] | None = None) -> np.ndarray:
    """RGBA (H, W, 4) uint8: each foreground class in its palette colour, background transparent."""
    m = np.asarray(mask)
    rgba = np.zeros(m.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = _LUT[m]
    show = m > 0
    if visible is not None:
        show &= np.isin(m, list(visible))
    if outline:
        show &= contour(m)
    rgba[..., 3] = np.where(show, alpha, 0).astype(np.uint8)
    return rgba


def compare(target: np.ndarray, pred: np.ndarray, alpha: int = 255) -> np.ndarray:
    """RGBA of palette.compare_map (correct, false positive, missed, wrong class), transparent
    where both are background."""
    m = compare_map(target, pred)
    rgba = np.zeros(m.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = compare_colours()[m]
    rgba[..., 3] = np.where(m > 0, alpha, 0).astype(np.uint8)
    return rgba


def compose(pred: np.ndarray, target: np.ndarray | None, show_pred: bool, show_truth: bool,
            outline: bool, comparing: bool) -> np.ndarray:
    """The RGBA overlay of one (slice's) prediction and ground truth under the display options."""
    pred = np.asarray(pred)
    target = None if target is None else np.asarray(target)
    if comparing and target is not None:
        return compare(target, pred)
    rgba = np.zeros(pred.shape + (4,), dtype=np.uint8)
    if show_pred:
        rgba = colorize(pred, outline=outline)
    if show_truth and target is not None:
        if show_pred:  # truth as a white outline over the prediction
            edge = contour(target)
            rgba[edge, :3] = GT_OUTLINE
            rgba[edge, 3] = 255
        else:
            rgba = colorize(target, outline=outline)
    return rgba


def compose_edit(labels: np.ndarray, pred: np.ndarray | None, show_pred: bool, outline: bool) -> np.ndarray:
    """The overlay while correcting: the labels being edited, and the prediction's outline."""
    rgba = colorize(labels, outline=outline)
    if show_pred and pred is not None:
        edge = contour(pred)
        rgba[edge, :3] = GT_OUTLINE
        rgba[edge, 3] = 255
    return rgba


def heat(values: np.ndarray) -> np.ndarray:
    """RGBA of a uint8 map (uncertainty): black-red-yellow-white, transparent where 0."""
    v = np.asarray(values, dtype=np.float32) / 255.0
    rgba = np.empty(v.shape + (4,), dtype=np.uint8)
    for c in range(3):
        rgba[..., c] = np.clip(3 * v - c, 0, 1) * 255
    rgba[..., 3] = np.clip(v * 2 * 255, 0, 255)
    return rgba


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W) / (H, W, 1) / (H, W, 3) / (C, H, W) uint8 -> (H, W, 3) uint8."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    return np.ascontiguousarray(a[..., :3], dtype=np.uint8)


def blend(image: np.ndarray, rgba: np.ndarray, opacity: float = 1.0) -> np.ndarray:
    """Alpha-composite an RGBA overlay onto an image; returns (H, W, 3) uint8."""
    base = to_rgb(image).astype(np.float32)
    a = (rgba[..., 3:4].astype(np.float32) / 255.0) * float(opacity)
    out = base * (1 - a) + rgba[..., :3].astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def to_qimage(rgb: np.ndarray) -> QImage:
    """(H, W, 3) or (H, W, 4) uint8 -> a QImage that owns its pixels."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = a.shape[:2]
    fmt = QImage.Format.Format_RGBA8888 if a.shape[2] == 4 else QImage.Format.Format_RGB888
    return QImage(a.data, w, h, a.strides[0], fmt).copy()


def overlay_pixmap(image: np.ndarray, mask: np.ndarray | None, size: int | None = None,
                   opacity: float = 0.5) -> QPixmap:
    """A thumbnail/tile: the image with its mask blended in, scaled to `size` pixels."""
    rgb = to_rgb(image)
    if mask is not None:
        rgb = blend(rgb, colorize(mask), opacity)
    pix = QPixmap.fromImage(to_qimage(rgb))
    if size:
        from PySide6.QtCore import Qt

        pix = pix.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
    return pix
