"""Colours shared by the predictor's colour masks, the viewer and any exported comparison (pure
numpy): one colour per class, and the compare map of a prediction against the ground truth."""

from __future__ import annotations

import numpy as np

# Background black, then well-separated colours (Okabe-Ito / tab10-like), repeated if needed.
_COLOURS = [(0, 0, 0), (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178),
            (213, 94, 0), (204, 121, 167), (148, 103, 189), (140, 86, 75), (127, 127, 127), (188, 189, 34)]

# The compare map's values, their names (the legend's) and colours; 0: background in both.
CORRECT, FALSE_POSITIVE, MISSED, WRONG_CLASS = 1, 2, 3, 4
COMPARE = {CORRECT: ("correct", (46, 204, 113)),            # green: the true class predicted
           FALSE_POSITIVE: ("false positive", (231, 76, 60)),  # red: foreground predicted on background
           MISSED: ("missed", (52, 152, 219)),               # blue: foreground predicted as background
           WRONG_CLASS: ("wrong class", (241, 196, 15))}     # yellow: another foreground class predicted


def class_colours(n: int) -> np.ndarray:
    """(n, 3) uint8 RGB colours; index 0 (background) is black."""
    cols = [_COLOURS[0]] + [_COLOURS[1 + (i % (len(_COLOURS) - 1))] for i in range(max(0, n - 1))]
    return np.array(cols[:n], dtype=np.uint8).reshape(n, 3)


def colourise(mask: np.ndarray, n_classes: int) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB."""
    return class_colours(max(n_classes, int(mask.max(initial=0)) + 1))[mask]


def compare_map(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(..., H, W) uint8 of CORRECT, FALSE_POSITIVE, MISSED, WRONG_CLASS, or 0 where both are
    background. A true kidney predicted as liver is WRONG_CLASS (neither a plain false positive
    nor a miss)."""
    t, p = np.asarray(target), np.asarray(pred)
    out = np.zeros(np.broadcast_shapes(t.shape, p.shape), dtype=np.uint8)
    out[(t > 0) & (p == t)] = CORRECT
    out[(t == 0) & (p > 0)] = FALSE_POSITIVE
    out[(t > 0) & (p == 0)] = MISSED
    out[(t > 0) & (p > 0) & (p != t)] = WRONG_CLASS
    return out


def compare_colours() -> np.ndarray:
    """(5, 3) uint8: the compare map's value -> RGB (0 black)."""
    lut = np.zeros((len(COMPARE) + 1, 3), dtype=np.uint8)
    for value, (_, colour) in COMPARE.items():
        lut[value] = colour
    return lut


def colourise_compare(target: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of compare_map (black where both are background)."""
    return compare_colours()[compare_map(target, pred)]
