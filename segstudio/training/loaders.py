"""fastai DataLoaders over the in-memory cache: one tensor index per batch, no per-item decoding.

Batches leave the cache as uint8 and are converted, augmented and normalised by fastai's batch
transforms on the training device.
"""

from __future__ import annotations

import numpy as np
import torch
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.transforms import IntToFloatTensor, Normalize
from fastai.torch_core import TensorImage, TensorMask
from fasttransform import Transform

from ..data import SegDataset
from .augment import augmentations

IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


class CachedPairs:
    """Indexable view of cached uint8 images (N, C, S, S) and masks (N, S, S)."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor):
        self.images, self.masks = images, masks

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> int:
        return i

    def batch(self, idxs) -> tuple[TensorImage, TensorMask]:
        idx = torch.as_tensor(idxs, dtype=torch.long)
        return TensorImage(self.images[idx]), TensorMask(self.masks[idx])


class CachedDL(TfmdDL):
    """A TfmdDL whose items are indices and whose batches are gathered in one tensor op."""

    def create_batch(self, b):
        return self.dataset.batch(b)


class GrayToRGB(Transform):
    """Repeat a single channel to three so ImageNet encoders (and their weights) fit."""

    order = 90  # after augmentation (3x less resampling for grayscale), before Normalize (99)

    def encodes(self, x: TensorImage):
        return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def dataset_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of cached uint8 images, for three channels, in [0, 1] units."""
    x = images.astype(np.float32) / 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = x.std(axis=(0, 2, 3)) + 1e-6
    if len(mean) == 1:
        mean, std = np.repeat(mean, 3), np.repeat(std, 3)
    return mean.tolist(), std.tolist()


def build_dataloaders(data: SegDataset, bs: int, device: torch.device, augment: bool = True,
                      stats: tuple[list[float], list[float]] | None = None,
                      seed: int | None = None) -> DataLoaders:
    """Train and valid DataLoaders over `data`; `stats` adds a Normalize with those mean/std."""
    images, masks = torch.from_numpy(data.images), torch.from_numpy(data.masks)
    tfms = [IntToFloatTensor(div=255.0, div_mask=1), GrayToRGB()]
    if stats is not None:
        tfms.append(Normalize.from_stats(*stats, cuda=False))

    def subset(idx):
        idx = torch.as_tensor(idx, dtype=torch.long)
        return CachedPairs(images[idx], masks[idx])

    n_train = len(data.train_idx)
    bs = max(1, min(bs, n_train))
    # A last batch of one breaks BatchNorm; drop it only then.
    train = CachedDL(subset(data.train_idx), bs=bs, shuffle=True, drop_last=n_train % bs == 1,
                     num_workers=0, device=device, after_batch=tfms + (augmentations() if augment else []))
    valid = CachedDL(subset(data.valid_idx), bs=bs, shuffle=False, drop_last=False,
                     num_workers=0, device=device, after_batch=list(tfms))
    if seed is not None:
        train.rng.seed(seed)
    dls = DataLoaders(train, valid, device=device)
    dls.c = len(data.codes)
    return dls
