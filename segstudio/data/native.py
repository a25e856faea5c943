"""Images and masks at native resolution (times a scale factor), for training on patches.

Kept beside the training-size cache (which previews and the Data area use) when a run trains on
patches: each item is stored at its own size, and a sample of every class's pixels is kept so
that patches can be centred on rare classes without searching the mask each time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LOCATIONS = 256  # pixels kept per class and item, to centre patches on


@dataclass
class NativeStore:
    """Every item's (C, h, w) uint8 image and (h, w) uint8 class-index mask, h = H * scale."""

    images: list[np.ndarray]
    masks: list[np.ndarray]
    scale: float
    locations: list[dict[int, np.ndarray]] = field(default_factory=list)  # item: {class: (k, 2) yx}

    def __post_init__(self):
        if not self.locations:
            rng = np.random.default_rng(0)
            self.locations = [class_locations(m, rng) for m in self.masks]

    def shape(self, i: int) -> tuple[int, int]:
        return tuple(self.masks[i].shape)

    def pixels(self, idx) -> int:
        """Pixels in the items `idx` (how many patches an epoch takes to cover them once)."""
        return int(sum(self.masks[i].size for i in idx))


def class_locations(mask: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """{class: up to LOCATIONS (y, x) positions of its pixels} for every foreground class."""
    out = {}
    for c in np.unique(mask):
        if c == 0:
            continue
        ys, xs = np.nonzero(mask == c)
        pick = rng.choice(len(ys), size=min(LOCATIONS, len(ys)), replace=False)
        out[int(c)] = np.stack([ys[pick], xs[pick]], axis=1).astype(np.int32)
    return out


def median_side(shapes: list[tuple[int, int]], scale: float = 1.0) -> float:
    """The median of the images' longer sides, scaled."""
    return float(np.median([max(s) for s in shapes])) * scale if shapes else 0.0
