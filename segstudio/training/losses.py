"""Loss functions by name: cross-entropy, Dice, or both summed. Mask pixels valued IGNORE
(patch padding; see patches.py) count in neither."""

from __future__ import annotations

import torch
from fastai.losses import CrossEntropyLossFlat, DiceLoss

IGNORE = 255  # patches.IGNORE (kept here too: losses import nothing from the data side)


class MaskedDiceLoss(DiceLoss):
    """fastai's soft Dice loss without the IGNORE pixels (fastai's has no ignore index)."""

    def __init__(self, axis: int = 1, reduction: str = "mean"):
        super().__init__(axis=axis, reduction=reduction)

    def __call__(self, pred, targ):
        keep = (targ != IGNORE).unsqueeze(1)
        onehot = self._one_hot(torch.where(keep[:, 0], targ, 0), pred.shape[1]) * keep
        probs = torch.softmax(pred.float(), dim=1) * keep
        dims = list(range(2, pred.ndim))
        inter = (probs * onehot).sum(dims)
        union = (probs + onehot).sum(dims)
        loss = 1 - (2 * inter + self.smooth) / (union + self.smooth)
        return loss.mean() if self.reduction == "mean" else loss.sum()


class CEDiceLoss:
    """Cross-entropy plus mean soft Dice loss (fastai has no combined loss)."""

    def __init__(self, axis: int = 1):
        self.ce = CrossEntropyLossFlat(axis=axis, ignore_index=IGNORE)
        self.dice = MaskedDiceLoss(axis=axis, reduction="mean")

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
        return CrossEntropyLossFlat(axis=1, ignore_index=IGNORE)
    if name == "dice":
        return MaskedDiceLoss(axis=1, reduction="mean")
    if name == "ce_dice":
        return CEDiceLoss(axis=1)
    raise ValueError(f"unknown loss {name!r}")
