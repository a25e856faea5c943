"""Training on patches at native resolution: random crops for training, a grid of tiles for
validation, so the validation Dice is that of the whole images at full resolution.

Crops are cut from `data.native` (NativeStore) at batch time. As in nnU-Net, a third of them is
centred near a pixel of a class the image holds (the class drawn uniformly among its classes,
so rare classes are seen); the rest is uniform. An image smaller than the patch is padded: image
0, mask IGNORE (no loss, no score). Draws use numpy's global generator, which a checkpoint saves.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from fastai.torch_core import TensorImage, TensorMask

from ..data import SegDataset
from .losses import IGNORE  # mask value: padding, or a pixel another validation tile scores

FOREGROUND = 0.33  # nnU-Net's oversample_foreground_percent


def patches_per_epoch(data: SegDataset, idx: np.ndarray, size: int) -> int:
    """Enough patches for an epoch to cover the images' pixels once (at least one per image)."""
    return max(len(idx), math.ceil(data.native.pixels(idx) / (size * size)))


class PatchPairs:
    """`n` random training patches of the items `idx` per epoch (positions wrap over the items)."""

    def __init__(self, data: SegDataset, idx: np.ndarray, size: int, n: int | None = None):
        self.data, self.idx, self.size = data, np.asarray(idx, dtype=np.int64), size
        self.n = n if n is not None else patches_per_epoch(data, self.idx, size)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i

    def batch(self, positions) -> tuple[TensorImage, TensorMask]:
        items = self.idx[np.asarray(positions, dtype=np.int64) % len(self.idx)]
        return _cut(self.data, [(int(i), *self._corner(int(i))) for i in items], self.size)

    def _corner(self, i: int) -> tuple[int, int]:
        h, w = self.data.native.shape(i)
        s = self.size
        locations = self.data.native.locations[i]
        if locations and np.random.random() < FOREGROUND:
            pixels = locations[list(locations)[np.random.randint(len(locations))]]
            y, x = pixels[np.random.randint(len(pixels))]
            return (int(np.clip(y - np.random.randint(s), 0, max(h - s, 0))),
                    int(np.clip(x - np.random.randint(s), 0, max(w - s, 0))))
        return np.random.randint(max(h - s, 0) + 1), np.random.randint(max(w - s, 0) + 1)


class TilePairs:
    """The validation items cut into tiles that cover each image once: a grid of patch-size
    steps whose last row and column are flush with the image's edge; the pixels of such a tile
    that an earlier one covered are IGNORE, so summed Dice counts are the whole images'."""

    def __init__(self, data: SegDataset, idx: np.ndarray, size: int):
        self.data, self.size = data, size
        self.tiles = [(int(i), y, x) for i in np.asarray(idx, dtype=np.int64)
                      for y in tile_starts(data.native.shape(int(i))[0], size)
                      for x in tile_starts(data.native.shape(int(i))[1], size)]

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> int:
        return i

    def batch(self, positions) -> tuple[TensorImage, TensorMask]:
        tiles = [self.tiles[int(p)] for p in positions]
        images, masks = _cut(self.data, tiles, self.size)
        for k, (i, y, x) in enumerate(tiles):
            top, left = _covered(y, self.size), _covered(x, self.size)
            masks[k, :top] = IGNORE
            masks[k, :, :left] = IGNORE
        return images, masks


def tile_starts(length: int, size: int) -> list[int]:
    """0, size, 2*size, … and a last start flush with the end (one start when length <= size)."""
    if length <= size:
        return [0]
    starts = list(range(0, length - size, size))
    return starts + [length - size]


def _covered(start: int, size: int) -> int:
    """How many leading rows (or columns) of the tile at `start` the previous tile covered: only
    the last, edge-flush tile overlaps its neighbour."""
    return 0 if start % size == 0 else size - start % size


def _cut(data: SegDataset, tiles: list[tuple[int, int, int]], size: int) -> tuple[TensorImage, TensorMask]:
    """(B, C, S, S) uint8 images and (B, S, S) masks of (item, top, left) crops; beyond an
    image's edge the image is 0 and the mask IGNORE."""
    channels = data.n_channels
    images = np.zeros((len(tiles), channels, size, size), np.uint8)
    masks = np.full((len(tiles), size, size), IGNORE, np.uint8)
    for k, (i, y, x) in enumerate(tiles):
        image, mask = data.native.images[i], data.native.masks[i]
        crop = mask[y:y + size, x:x + size]
        h, w = crop.shape
        masks[k, :h, :w] = crop
        images[k, :, :h, :w] = image[:, y:y + size, x:x + size]  # a grey image fills every channel
    return TensorImage(torch.from_numpy(images)), TensorMask(torch.from_numpy(masks))


# "auto": patches when the images' median longer side (scaled) is at least this many training sizes:
# a 512 px slice trains resized at 256 (fine, as usual), a 1024 px or larger image on patches
AUTO_FACTOR = 3.0


def input_mode(config, data: SegDataset) -> tuple[str, str]:
    """("patches" or "resize", a note for the user or "") for a config on a loaded dataset."""
    from ..data.native import median_side

    asked = getattr(config.input_mode, "value", config.input_mode)
    if data.volumetric:
        note = ("Patches at native resolution are for 2-D images; slices of 3-D scans are resized to the training "
                "size." if asked == "patches" else "")
        return "resize", note
    if asked != "auto":
        return asked, ""
    side = median_side(data.orig_sizes, config.scale)
    if side >= AUTO_FACTOR * config.size:
        return "patches", (f"The images are large (median longer side {side:.0f} px after scaling): training on "
                           f"{config.size} px patches at native resolution, predicting by sliding window.")
    return "resize", ""


def preview_tiles(data: SegDataset, count: int, size: int):
    """preview_items for a patch run: validation tiles with the most foreground, spread over the set."""
    tiles = TilePairs(data, data.valid_idx, size)
    if count <= 0 or not len(tiles):
        return None
    fg = np.array([(data.native.masks[i][y:y + size, x:x + size] > 0).mean() for i, y, x in tiles.tiles])
    order = np.argsort(-fg, kind="stable")[:max(count * 4, count)]
    pick = np.sort(order)[np.linspace(0, len(order) - 1, min(count, len(order))).round().astype(np.int64)]
    images, masks = tiles.batch(pick)
    images, masks = images.numpy(), masks.numpy()
    masks = np.where(masks == IGNORE, 0, masks).astype(np.uint8)
    names = [f"{data.name(i)} @{y},{x}" for i, y, x in (tiles.tiles[p] for p in pick)]
    return names, images, images, masks
