"""Class colours shared by the predictor's colour masks and the viewer (pure numpy)."""

from __future__ import annotations

import numpy as np

# Background black, then well-separated colours (Okabe-Ito / tab10-like), repeated if needed.
_COLOURS = [(0, 0, 0), (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
            (213, 94, 0), (204, 121, 167), (148, 103, 189), (140, 86, 75), (127, 127, 127), (188, 189, 34)]


def class_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours; index 0 (background) is black."""
    cols = [_COLOURS[0]] + [_COLOURS[1 + (i % (len(_COLOURS) - 1))] for i in range(max(0, n - 1))]
    return np.array(cols[:n], dtype=np.uint8).reshape(n, 3)


def colourise(mask: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB."""
    return class_colours(max(n_classes, int(mask.max(initial=0)) + 1))[mask]
