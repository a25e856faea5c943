"""Per-class Dice, dataset-level (sums over all validation batches), and the foreground mean.

fastai's DiceMulti averages the background in; a segmentation user wants each class and the
mean over foreground classes.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from fastai.learner import Metric


def dice_counts(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class (intersection, pred + target pixel counts) for class-index tensors; target
    values past the classes (patches.IGNORE: padding, pixels another tile scores) do not count."""
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    keep = target < n_classes
    pred, target = pred[keep], target[keep]
    inter = torch.bincount(target[pred == target], minlength=n_classes)[:n_classes]
    total = (torch.bincount(pred, minlength=n_classes) + torch.bincount(target, minlength=n_classes))[:n_classes]
    return inter, total


def dice_from_counts(inter, total) -> np.ndarray:
    """Dice per class; nan where the class is in neither prediction nor target."""
    inter = np.asarray(inter, dtype=np.float64)
    total = np.asarray(total, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2 * inter / total, np.nan)


def foreground_mean(dice: np.ndarray) -> float:
    """Mean Dice over foreground classes (index 1 on), ignoring absent ones; 0.0 if none present."""
    fg = np.asarray(dice, dtype=np.float64)[1:]
    fg = fg[~np.isnan(fg)]
    return float(fg.mean()) if fg.size else 0.0


def dice_per_class(pred, target, n_classes: int) -> np.ndarray:
    """Dice of each class for one prediction (numpy or torch class-index arrays)."""
    def tensor(a):
        return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a, copy=True))
    inter, total = dice_counts(tensor(pred), tensor(target), n_classes)
    return dice_from_counts(inter.numpy(), total.numpy())


class PerClassDice(Metric):
    """fastai metric: value is the foreground-mean Dice; `per_class` holds every class's Dice."""

    def __init__(self, n_classes: int):
        self.n_classes = n_classes
        self.reset()

    def reset(self):
        self.inter = torch.zeros(self.n_classes, dtype=torch.long)
        self.total = torch.zeros(self.n_classes, dtype=torch.long)

    def accumulate(self, learn):
        pred = learn.pred.argmax(dim=1)
        inter, total = dice_counts(pred, learn.y, self.n_classes)
        self.inter += inter.cpu()
        self.total += total.cpu()

    @property
    def per_class(self) -> np.ndarray:
        return dice_from_counts(self.inter.numpy(), self.total.numpy())

    @property
    def value(self) -> float:
        return foreground_mean(self.per_class)

    @property
    def name(self) -> str:
        return "dice"


class VolumeDice(Metric):
    """fastai metric for slices of 3-D scans: Dice per class over each whole scan (counts summed
    over its validation slices, in the validation loader's fixed order), then the mean over
    scans. `per_volume` holds each scan's per-class Dice."""

    def __init__(self, n_classes: int, item_volume: np.ndarray):
        self.n_classes = n_classes
        self.item_volume = np.asarray(item_volume, dtype=np.int64)  # volume of each valid item, in order
        self.volumes = np.unique(self.item_volume)
        self.offset = 0  # where this process's validation items start (distributed: its part)
        self.reset()

    def reset(self):
        self.pos = self.offset
        self.inter = torch.zeros(len(self.volumes), self.n_classes, dtype=torch.long)
        self.total = torch.zeros(len(self.volumes), self.n_classes, dtype=torch.long)

    def accumulate(self, learn):
        pred = learn.pred.argmax(dim=1)
        rows = np.searchsorted(self.volumes, self.item_volume[self.pos:self.pos + len(pred)])
        self.pos += len(pred)
        for r in np.unique(rows):
            sel = torch.from_numpy(np.flatnonzero(rows == r)).to(pred.device)
            inter, total = dice_counts(pred[sel], learn.y[sel], self.n_classes)
            self.inter[r] += inter.cpu()
            self.total[r] += total.cpu()

    @property
    def per_volume(self) -> np.ndarray:
        """(volumes, classes) Dice; nan where a class is in neither prediction nor label."""
        return dice_from_counts(self.inter.numpy(), self.total.numpy())

    @property
    def per_class(self) -> np.ndarray:
        """Each class's Dice averaged over the scans that have it (predicted or labelled)."""
        if not len(self.volumes):
            return np.full(self.n_classes, np.nan)
        with warnings.catch_warnings():  # a class absent from every scan is nan, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(self.per_volume, axis=0)

    @property
    def value(self) -> float:
        if not len(self.volumes):
            return 0.0
        return float(np.mean([foreground_mean(d) for d in self.per_volume]))

    @property
    def name(self) -> str:
        return "dice"

