"""Sliding-window prediction at full resolution: the nnU-Net / MONAI scheme, hand-written here
because MONAI is not a dependency (and its sliding_window_inference batches windows of one image
only, where a folder prediction wants windows of several images in one forward pass).

An image is padded with zeros on the bottom/right to at least S x S (as training pads), cut into
S x S windows overlapping by `overlap`, the windows run through the model in batches, and each
window's probabilities added with a Gaussian importance map (the centre of a window counts most,
its border little); the sums divided by the summed weights and the padding cropped off. All of
it stays on the device: no host sync per window.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F


ProbabilitiesFn = Callable[[torch.Tensor], torch.Tensor]  # (B, C, S, S) 0..1 -> (B, K, S, S)
SIGMA_SCALE = 1 / 8  # the importance map's sigma, as a share of the window (nnU-Net's and MONAI's)
MIN_WEIGHT = 1e-3  # MONAI's floor for the importance map: a border pixel covered once keeps a weight


def gaussian_weights(size: int, sigma_scale: float = SIGMA_SCALE, device: torch.device | str | None = None
                     ) -> torch.Tensor:
    """(S, S) float32 importance map: a Gaussian with sigma = sigma_scale * S centred on the
    window, scaled to a maximum of 1 and clipped at MIN_WEIGHT (MONAI's defaults)."""
    c = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (c / (sigma_scale * size)) ** 2)
    w = torch.outer(g, g)
    return (w / w.max()).clamp_min(MIN_WEIGHT).to(device=device, dtype=torch.float32)


def window_step(size: int, overlap: float) -> int:
    """Pixels from one window's start to the next: size * (1 - overlap), at least 1."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), not {overlap}")
    return max(1, round(size * (1 - overlap)))


def window_positions(length: int, size: int, overlap: float) -> list[int]:
    """Start offsets of windows of `size` along `length`: every window_step pixels, the last one
    flush with the end; [0] when the image is not longer than a window (it is padded)."""
    last = max(length - size, 0)
    starts = list(range(0, last + 1, window_step(size, overlap)))
    return starts if starts[-1] == last else starts + [last]


class Tiled:
    """One image cut into windows, and the weighted sums its windows' probabilities go to."""

    def __init__(self, image: torch.Tensor, size: int, overlap: float = 0.5,
                 weights: torch.Tensor | None = None):
        """`image`: (C, H, W) float 0..1 on the device. `weights` None: the image is one window
        of exactly S x S (a whole image resized to the training size), taken as it comes."""
        _, h, w = image.shape
        self.shape, self.size = (h, w), size
        if weights is None and (h, w) != (size, size):
            raise ValueError(f"an unweighted image is one {size} x {size} window, not {h} x {w}")
        if h < size or w < size:  # zeros on the bottom/right, as training pads
            image = F.pad(image, (0, max(size - w, 0), 0, max(size - h, 0)))
        self.image, self.weights = image, weights
        self.starts = [(y, x) for y in window_positions(h, size, overlap)
                       for x in window_positions(w, size, overlap)]
        self.sum: torch.Tensor | None = None
        self.norm: torch.Tensor | None = None
        self.done = 0

    @classmethod
    def whole(cls, image: torch.Tensor) -> "Tiled":
        """An image already at the model's (S, S) input size: one window, no weighting."""
        return cls(image, image.shape[-1])

    def window(self, k: int) -> torch.Tensor:
        y, x = self.starts[k]
        return self.image[:, y:y + self.size, x:x + self.size]

    def add(self, k: int, probs: torch.Tensor) -> None:
        """Window `k`'s (K, S, S) probabilities."""
        if self.weights is None:
            self.sum = probs
        else:
            y, x = self.starts[k]
            if self.sum is None:
                self.sum = probs.new_zeros((probs.shape[0], *self.image.shape[1:]))
                self.norm = probs.new_zeros(self.image.shape[1:])
            self.sum[:, y:y + self.size, x:x + self.size] += probs * self.weights
            self.norm[y:y + self.size, x:x + self.size] += self.weights
        self.done += 1

    @property
    def complete(self) -> bool:
        return self.done == len(self.starts)

    def result(self) -> torch.Tensor:
        """(K, H, W) probabilities of the image (before padding)."""
        h, w = self.shape
        out = self.sum if self.weights is None else self.sum / self.norm
        return out[:, :h, :w]


def stitch(items: Iterable[tuple[Any, Tiled]], probabilities_fn: ProbabilitiesFn, batch: int
           ) -> Iterator[tuple[Any, torch.Tensor]]:
    """(payload, Tiled) pairs -> (payload, (K, H, W) probabilities on the device), in order.
    Windows go through `probabilities_fn` `batch` at a time, across images: a batch may hold
    several windows of one image or the windows of several small ones. An image is yielded
    as soon as its last window is in."""
    pending: deque[tuple[Any, Tiled]] = deque()
    queue: list[tuple[Tiled, int]] = []

    def run() -> None:
        with torch.no_grad():
            probs = probabilities_fn(torch.stack([t.window(k) for t, k in queue]))
            for (t, k), p in zip(queue, probs):
                t.add(k, p.to(t.image.device))
        queue.clear()

    for payload, tiled in items:
        pending.append((payload, tiled))
        for k in range(len(tiled.starts)):
            queue.append((tiled, k))
            if len(queue) >= batch:
                run()
                while pending and pending[0][1].complete:
                    done, t = pending.popleft()
                    yield done, t.result()
    if queue:
        run()
    while pending:
        done, t = pending.popleft()
        yield done, t.result()

