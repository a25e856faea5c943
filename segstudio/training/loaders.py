"""fastai DataLoaders over the slice cache: one gather per batch, no per-item decoding.

Batches leave the cache as uint8 and are converted, augmented and normalised by fastai's batch
transforms on the training device. The cache may be memory-mapped (3-D scans): a batch reads
only its own slices. 2.5-D inputs stack each slice with its neighbours as channels, and the
training loader draws a share of the slices without foreground anew each epoch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.transforms import IntToFloatTensor, Normalize
from fastai.torch_core import TensorImage, TensorMask
from fasttransform import Transform

from ..data import SegDataset
from .augment import augmentations

IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
STATS_SAMPLE = 2000  # slices the normalisation statistics are computed over
# The automatic batch size: nnU-Net's rule, a batch covers at most 5% of the training pixels,
# at least 2 samples, at most 8 (the former fixed default). On 28 MNI slices (bench_time_to_dice)
# batches of 2 reached held-out Dice 0.77 (3 seeds, 4 epochs) where batches of 8 reached 0.64 in
# the same CPU time: a small dataset learns more from many small steps than from a few large ones.
BATCH_SHARE, BATCH_MIN, BATCH_MAX = 0.05, 2, 8


def auto_batch_size(data: SegDataset) -> int:
    """The batch size for `bs` 0 ("auto"): BATCH_SHARE of the training pixels (at native
    resolution for patches) in samples of the training size, within BATCH_MIN..BATCH_MAX."""
    train = data.train_idx
    pixels = data.native.pixels(train) if data.native is not None else len(train) * data.size ** 2
    return int(min(BATCH_MAX, max(BATCH_MIN, BATCH_SHARE * pixels // data.size ** 2)))


class CachedPairs:
    """The items `idx` of a dataset's cache; a batch gathers their images (with neighbouring
    slices as channels in 2.5-D) and masks."""

    def __init__(self, data: SegDataset, idx: np.ndarray):
        self.data, self.idx = data, np.asarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> int:
        return i

    def batch(self, positions) -> tuple[TensorImage, TensorMask]:
        images, masks = gather(self.data, self.idx[np.asarray(positions, dtype=np.int64)])
        return TensorImage(torch.from_numpy(images)), TensorMask(torch.from_numpy(masks))


def gather(data: SegDataset, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, C * (2 * context + 1), S, S) images and (B, S, S) masks of `items`."""
    if data.context:
        rows = data.neighbours(items)
        images = data.images[rows.ravel()]
        images = images.reshape(len(items), -1, *images.shape[-2:])
    else:
        images = data.images[items]
    return np.ascontiguousarray(images), np.ascontiguousarray(data.masks[items])


class CachedDL(TfmdDL):
    """A TfmdDL whose items are positions and whose batches are gathered in one operation.

    With `empty_share` < 1, each epoch uses every item with foreground and that share of the
    others, drawn anew (same count every epoch, so epochs have the same length)."""

    def __init__(self, dataset, empty_share: float = 1.0, **kwargs):
        self._plan = _epoch_plan(dataset, empty_share)
        self._shard: tuple[int, int] | None = None  # (rank, world) in distributed training
        super().__init__(dataset, **kwargs)
        if self._plan is not None:
            self.n = len(self._plan[0]) + self._plan[2]
        self._epoch_n = self.n

    def create_batch(self, b):
        return self.dataset.batch(b)

    def shard(self, rank: int, world: int) -> int:
        """Keep this rank's share of every epoch; returns where it starts in the full order.

        A shuffled (training) loader takes every world-th item of the epoch, whose shuffle is the
        same on every rank, padded with its first items so that every rank has as many batches
        (DDP synchronises each). An ordered (validation) loader takes a contiguous part, unpadded,
        so that summed scores count each item once."""
        self._shard = (rank, world)
        if self.shuffle:
            self.n = math.ceil(self._epoch_n / world)
            self.drop_last = self.n % self.bs == 1
            return rank
        per = math.ceil(self._epoch_n / world)
        start = min(rank * per, self._epoch_n)
        self.n = min(per, self._epoch_n - start)
        return start

    def get_idxs(self):
        if self._shard is None:
            return self._epoch_idxs()
        n, self.n = self.n, self._epoch_n
        try:
            idxs = self._epoch_idxs()
        finally:
            self.n = n
        rank, world = self._shard
        if self.shuffle:
            idxs = idxs + idxs[:(-len(idxs)) % world]
            return idxs[rank::world]
        start = min(rank * math.ceil(len(idxs) / world), len(idxs))
        return idxs[start:start + n]

    def _epoch_idxs(self):
        if self._plan is None:
            return super().get_idxs()
        full, empty, k = self._plan
        idxs = list(full) + list(self.rng.sample(list(empty), k))
        return self.shuffle_fn(idxs) if self.shuffle else idxs


def _epoch_plan(dataset, share: float):
    """(positions with foreground, positions without, how many of those per epoch), or None
    when every item is used every epoch."""
    if share >= 1.0 or not isinstance(dataset, CachedPairs):
        return None
    has_fg = dataset.data.has_foreground[dataset.idx]
    empty = np.flatnonzero(~has_fg)
    if not len(empty):
        return None
    k = int(round(share * len(empty)))
    return np.flatnonzero(has_fg), empty, k


class GrayToRGB(Transform):
    """Repeat a single channel to three so ImageNet encoders (and their weights) fit."""

    order = 90  # after augmentation (3x less resampling for grayscale), before Normalize (99)

    def encodes(self, x: TensorImage):
        return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def dataset_stats(data: SegDataset) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the model's inputs in [0, 1] units (over at most STATS_SAMPLE
    slices); one channel is given for the three it becomes."""
    n = len(data)
    rows = np.linspace(0, n - 1, min(n, STATS_SAMPLE)).astype(np.int64) if n else np.zeros(0, np.int64)
    total = np.zeros(data.n_channels)
    squares = np.zeros(data.n_channels)
    for start in range(0, len(rows), 64):  # in chunks: a sample of large slices stays small
        x = data.images[rows[start:start + 64]].astype(np.float64) / 255.0
        total += x.sum(axis=(0, 2, 3))
        squares += (x ** 2).sum(axis=(0, 2, 3))
    count = max(len(rows), 1) * data.size * data.size
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0)) + 1e-6
    repeat = 2 * data.context + 1
    mean, std = np.tile(mean, repeat), np.tile(std, repeat)
    if len(mean) == 1:
        mean, std = np.repeat(mean, 3), np.repeat(std, 3)
    return mean.tolist(), std.tolist()


def build_dataloaders(data: SegDataset, bs: int, device: torch.device, augment: bool = True,
                      stats: tuple[list[float], list[float]] | None = None,
                      seed: int | None = None, empty_share: float = 1.0) -> DataLoaders:
    """Train and valid DataLoaders over `data`; `stats` adds a Normalize with those mean/std."""
    tfms = [IntToFloatTensor(div=255.0, div_mask=1), GrayToRGB()]
    if stats is not None:
        tfms.append(Normalize.from_stats(*stats, cuda=False))
    if data.native is not None:  # patches at native resolution (patches.py)
        from .patches import PatchPairs, TilePairs

        train_set, valid_set = PatchPairs(data, data.train_idx, data.size), TilePairs(data, data.valid_idx, data.size)
    else:
        train_set, valid_set = CachedPairs(data, data.train_idx), CachedPairs(data, data.valid_idx)
    bs = max(1, min(bs, len(data.train_idx)))
    train = CachedDL(train_set, empty_share=empty_share, bs=bs, shuffle=True, num_workers=0,
                     device=device, after_batch=tfms + (augmentations() if augment else []))
    train.drop_last = train.n % bs == 1  # a last batch of one breaks BatchNorm; drop it only then
    valid = CachedDL(valid_set, bs=bs, shuffle=False, drop_last=False,
                     num_workers=0, device=device, after_batch=list(tfms))
    if seed is not None:
        train.rng.seed(seed)
    dls = DataLoaders(train, valid, device=device)
    dls.c = len(data.codes)
    return dls
