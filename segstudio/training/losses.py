"""Loss functions by name: cross-entropy, Dice, or both summed."""

from __future__ import annotations

import torch
from fastai.losses import CrossEntropyLossFlat, DiceLoss


class CEDiceLoss:
    """Cross-entropy plus mean soft Dice loss (fastai has no combined loss)."""

    def __init__(self, axis: int = 1):
        self.ce = CrossEntropyLossFlat(axis=axis)
        self.dice = DiceLoss(axis=axis, reduction="mean")

    def __call__(self, pred, targ):
        return self.ce(pred, targ) + self.dice(pred, targ)

    def activation(self, x):
        return torch.softmax(x, dim=1)

    def decodes(self, x):
        return x.argmax(dim=1)


def make_loss(name: str):
    """The loss for a config's `loss` value ("ce", "dice" or "ce_dice")."""
    name = getattr(name, "value", name)
    if name == "ce":
        return CrossEntropyLossFlat(axis=1)
    if name == "dice":
        return DiceLoss(axis=1, reduction="mean")
    if name == "ce_dice":
        return CEDiceLoss(axis=1)
    raise ValueError(f"unknown loss {name!r}")
