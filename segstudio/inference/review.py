"""Review: predictions and Dice for dataset items at the training size, for the viewer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..data import SegDataset
from ..errors import Cancelled
from ..training.callbacks import display_image
from ..training.metrics import dice_per_class, foreground_mean
from .predictor import Predictor


@dataclass
class ReviewItem:
    index: int  # index into the dataset
    name: str
    image: np.ndarray  # (S, S) or (S, S, 3) uint8
    target: np.ndarray  # (S, S) uint8
    pred: np.ndarray  # (S, S) uint8
    dice: tuple[float, ...]  # per class (nan where absent in both)
    dice_mean: float  # foreground mean; nan when the image has no foreground, predicted or true


def review_items(predictor: Predictor, data: SegDataset, indices: Sequence[int] | None = None,
                 should_stop: Callable[[], bool] | None = None, batch_size: int = 8) -> list[ReviewItem]:
    """Predict `indices` (default: the validation items) and score each one, worst first (nan last)."""
    idx = np.asarray(data.valid_idx if indices is None else indices, dtype=np.int64)
    n_classes = len(data.codes)
    items = []
    for start in range(0, len(idx), batch_size):
        if should_stop and should_stop():
            raise Cancelled()
        chunk = idx[start:start + batch_size]
        preds = predictor.probabilities_resized(data.images[chunk]).argmax(dim=1).to("cpu").numpy().astype(np.uint8)
        for i, pred in zip(chunk, preds):
            dice = dice_per_class(pred, data.masks[i], n_classes)
            # nan when neither target nor prediction has any foreground: nothing to score.
            mean = foreground_mean(dice) if not np.isnan(dice[1:]).all() else float("nan")
            items.append(ReviewItem(int(i), data.names[i], display_image(data.images[i]), data.masks[i], pred,
                                    tuple(float(d) for d in dice), mean))
    return sorted(items, key=lambda it: (np.isnan(it.dice_mean), it.dice_mean))
