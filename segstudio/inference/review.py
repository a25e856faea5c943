"""Review: predictions and Dice for dataset items at the training size, and the masks a folder
prediction wrote, for the viewer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..data import SegDataset
from ..data.reader import read_file
from ..data.windowing import parse_window
from ..errors import Cancelled, DataError
from ..training.callbacks import display_image
from ..training.metrics import dice_per_class, foreground_mean
from .predictor import PredictReport, Predictor

MAX_PREDICTED = 200  # predicted images shown in the review (a folder may hold thousands)


@dataclass
class ReviewItem:
    index: int  # index into the dataset (-1 for a predicted image outside it)
    name: str
    image: np.ndarray  # (H, W) or (H, W, 3) uint8
    target: np.ndarray | None  # (H, W) uint8, None when there is no ground truth
    pred: np.ndarray  # (H, W) uint8
    dice: tuple[float, ...]  # per class (nan where absent in both)
    dice_mean: float  # foreground mean; nan when the image has no foreground, predicted or true
    source: str = ""  # the image file (a DICOM one is shown in its own units)
    frame: int = 0


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
                                    tuple(float(d) for d in dice), mean, data.sources[i], data.frames[i]))
    return sorted(items, key=lambda it: (np.isnan(it.dice_mean), it.dice_mean))


def predicted_items(report: PredictReport, window: str,
                    should_stop: Callable[[], bool] | None = None) -> list[ReviewItem]:
    """The first MAX_PREDICTED masks a folder prediction wrote, over their images (no Dice:
    there is no ground truth), in the order they were written."""
    spec, items, frames_of = parse_window(window), [], {}
    for mask_path, (source, frame) in list(zip(report.written, report.sources))[:MAX_PREDICTED]:
        if should_stop and should_stop():
            raise Cancelled()
        if source not in frames_of:
            try:
                frames_of = {source: read_file(Path(source), spec).frames}  # one file at a time
            except DataError:
                frames_of = {source: []}
        frames = frames_of[source]
        if frame >= len(frames):
            continue
        pred = np.asarray(Image.open(mask_path))
        if pred.shape == frames[frame].shape[:2]:
            items.append(ReviewItem(-1, Path(mask_path).stem, frames[frame], None, pred, (),
                                    float("nan"), source, frame))
    return items
