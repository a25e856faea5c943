"""Review: predictions and Dice for dataset items at the training size (a 3-D scan as one item
with its slices; a run trained on patches: at the image's full size, with the sliding window),
and the masks a folder prediction wrote, for the viewer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ..data import SegDataset
from ..data.masks import class_indices
from ..preprocess.recipe import windowed
from ..preprocess.slicing import resize_image, resize_mask
from ..preprocess.windowing import apply_window, parse_window, percentile_window
from ..errors import Cancelled, DataError
from ..io.registry import is_volume_file, read_image, read_scan, volume_stem
from ..training.callbacks import display_image
from ..training.metrics import dice_per_class, foreground_mean
from .predictor import PredictReport, Predictor, prefetched
from .uncertainty import entropy_map, score, to_uint8
from .volumes import structure_volumes

MAX_PREDICTED = 200  # predicted images shown in the review (a folder may hold thousands)
MAX_PREDICTED_SCANS = 10  # predicted 3-D scans shown (held at up to DISPLAY_SIDE pixels a side)
DISPLAY_SIDE = 256


@dataclass
class ReviewItem:
    index: int  # index into the dataset (a scan's volume index; -1 outside the dataset)
    name: str
    image: np.ndarray  # (H, W) or (H, W, 3) uint8; a scan: (Z, H, W)
    target: np.ndarray | None  # (H, W) uint8 (a scan: (Z, H, W)), None without ground truth
    pred: np.ndarray  # like target
    dice: tuple[float, ...]  # per class (nan where absent in both); 3-D for a scan
    dice_mean: float  # foreground mean; nan when the image has no foreground, predicted or true
    source: str = ""  # the image file (a DICOM one is shown in its own units)
    frame: int = 0
    volume_ml: tuple[tuple[str, float, float], ...] = ()  # scan: (class, predicted mL, true mL)
    slice_errors: np.ndarray | None = None  # scan: misclassified pixels per slice
    mask_file: str = ""  # the user's mask (or its correction); "" for an unlabelled image
    uncertainty: float = float("nan")  # mean entropy of the prediction (uncertainty.score)
    uncertainty_map: np.ndarray | None = None  # like pred, uint8 entropy (255: all classes equal)
    parent_dice: float = float("nan")  # the parent run's mean Dice on this item (continued runs)

    @property
    def is_scan(self) -> bool:
        return self.pred.ndim == 3


def review_items(predictor: Predictor, data: SegDataset, indices: Sequence[int] | None = None,
                 should_stop: Callable[[], bool] | None = None, batch_size: int = 8) -> list[ReviewItem]:
    """Predict `indices` (default: the validation items) and score each one, worst first (nan
    last); a dataset of 3-D scans gives one item per validation scan (see scan_items)."""
    if data.volumetric and indices is None:
        return scan_items(predictor, data, should_stop, batch_size)
    idx = np.asarray(data.valid_idx if indices is None else indices, dtype=np.int64)
    if predictor.patches is not None and not data.volumetric:
        items = full_size_items(predictor, data, idx, should_stop, batch_size)
        return sorted(items, key=lambda it: (np.isnan(it.dice_mean), it.dice_mean))
    n_classes = len(data.codes)
    items = []
    for start in range(0, len(idx), batch_size):
        if should_stop and should_stop():
            raise Cancelled()
        chunk = idx[start:start + batch_size]
        probs = predictor.probabilities_resized(data.images[chunk])
        preds = probs.argmax(dim=1).to("cpu").numpy().astype(np.uint8)
        entropy = entropy_map(probs)
        for i, pred, ent in zip(chunk, preds, entropy):
            dice = dice_per_class(pred, data.masks[i], n_classes)
            v = data.volumes[data.item_volume[i]]  # a 2-D item: one image (or frame) of a file
            items.append(ReviewItem(int(i), data.name(i), display_image(data.images[i]), data.masks[i], pred,
                                    tuple(float(d) for d in dice), _mean(dice), v.sources[0], v.frame,
                                    mask_file=v.label, uncertainty=score(ent), uncertainty_map=to_uint8(ent)))
    return sorted(items, key=lambda it: (np.isnan(it.dice_mean), it.dice_mean))


def full_size_items(predictor: Predictor, data: SegDataset, idx: np.ndarray,
                    should_stop: Callable[[], bool] | None = None, batch_size: int = 8) -> list[ReviewItem]:
    """A patch run's items: each image read from its file and predicted at its full size with the
    sliding window (`batch_size` windows a pass), Dice against its full-size mask (in item order)."""
    spec = parse_window(predictor.window)

    def entries():  # read ahead in a thread while the model runs
        for i in idx:
            if should_stop and should_stop():
                raise Cancelled()
            image, target = full_size_pair(data, int(i), spec)
            yield (int(i), image, target), image.shape[:2], predictor.prepare(image)

    items = []
    for (i, image, target), probs in predictor.stream(prefetched(entries(), 4), batch=batch_size):
        pred = probs.argmax(dim=0).cpu().numpy().astype(np.uint8)
        entropy = entropy_map(probs)
        dice = dice_per_class(pred, target, len(data.codes))
        v = data.volumes[data.item_volume[i]]
        shown = windowed(image, spec)
        items.append(ReviewItem(i, data.name(i), shown, target, pred, tuple(float(d) for d in dice), _mean(dice),
                                v.sources[0], v.frame, mask_file=v.label, uncertainty=score(entropy),
                                uncertainty_map=to_uint8(entropy)))
    return items


def full_size_pair(data: SegDataset, i: int, window) -> tuple[np.ndarray, np.ndarray]:
    """Item `i`'s image (uint8, or int16 HU when `window` is a CT W/L) and class-index mask at
    the image's full size: kept by the dataset at native resolution (scale 1), else read from
    their files. A file that no longer reads as it did, or a DICOM SEG mask (its frames are
    segments): the cached item, resized back to that size."""
    v = data.volumes[data.item_volume[i]]
    native = getattr(data, "native", None)  # loaded for training on patches (data/native.py)
    if native is not None and native.scale == 1 and tuple(native.shape(i)) == v.slice_shape(data.axis):
        return display_image(native.images[i]), native.masks[i]
    try:
        image = read_image(Path(v.sources[0]), window, defer_ct=isinstance(window, tuple)).frames[v.frame]
    except (DataError, IndexError):
        h, w = v.slice_shape(data.axis)
        image = display_image(resize_image(display_image(data.images[i]), (h, w)))
    cached = data.masks[i]
    try:
        mask = read_image(Path(v.label), mask=True)
        raw = mask.frames[v.frame] if mask.modality != "SEG" else None
        if raw is not None and raw.shape[:2] == image.shape[:2]:
            target = class_indices(raw, data.class_keys, len(data.codes), data.labels == "instances")
            if np.array_equal(resize_mask(target, cached.shape[-2:]), cached):  # read as when loaded
                return image, target
    except (DataError, IndexError):
        pass
    return image, resize_mask(cached, image.shape[:2])


def scan_items(predictor: Predictor, data: SegDataset, should_stop: Callable[[], bool] | None = None,
               batch_size: int = 8) -> list[ReviewItem]:
    """Each validation scan with its slices predicted, Dice per class over the whole scan, the
    millilitres of each structure (predicted and true) and the errors per slice; worst first."""
    from ..training.loaders import gather

    n_classes, items = len(data.codes), []
    for k in data.valid_volumes():
        v = data.volumes[k]
        rows = np.arange(v.first, v.first + v.n_slices)
        preds = []
        for start in range(0, len(rows), batch_size):
            if should_stop and should_stop():
                raise Cancelled()
            inputs, _ = gather(data, rows[start:start + batch_size])
            probs = predictor.probabilities_resized(inputs)
            preds.append(probs.argmax(dim=1).to("cpu").numpy().astype(np.uint8))
        pred, target = np.concatenate(preds), np.asarray(data.masks[rows])
        dice = dice_per_class(pred, target, n_classes)
        mean = _mean(dice)
        h, w = v.slice_shape(data.axis)
        scale = v.voxel_ml() * h * w / (data.size * data.size)  # a cache pixel's share of a slice
        counts_p = np.bincount(pred.ravel(), minlength=n_classes)
        counts_t = np.bincount(target.ravel(), minlength=n_classes)
        ml = tuple((data.codes[c], float(counts_p[c] * scale), float(counts_t[c] * scale))
                   for c in range(1, n_classes))
        errors = (pred != target).reshape(len(rows), -1).sum(axis=1)
        image = np.asarray(data.images[rows, 0])
        items.append(ReviewItem(k, v.name, image, target, pred, tuple(float(d) for d in dice), mean,
                                v.sources[0], 0, ml, errors, mask_file=v.label))
    return sorted(items, key=lambda it: (np.isnan(it.dice_mean), it.dice_mean))


def _mean(dice: np.ndarray) -> float:
    """The foreground mean; nan when neither target nor prediction has any foreground."""
    return foreground_mean(dice) if not np.isnan(dice[1:]).all() else float("nan")


def add_parent_dice(items: list[ReviewItem], parent: Predictor, data: SegDataset,
                    should_stop: Callable[[], bool] | None = None) -> None:
    """The parent run's mean Dice on the same validation images (a continued run's review), as
    its own review scores them: `data` holds those images prepared as the parent prepared its own
    (its size, window and mask reading; preprocess.continued.parent_data), matched to `items` by file and frame."""
    by_file = {(it.source, it.frame): it for it in items if not it.is_scan and it.target is not None}
    indices = [i for i in range(len(data)) if _file_frame(data, i) in by_file]
    for parent_item in review_items(parent, data, indices, should_stop):
        by_file[_file_frame(data, parent_item.index)].parent_dice = parent_item.dice_mean


def _file_frame(data: SegDataset, i: int) -> tuple[str, int]:
    v = data.volumes[data.item_volume[i]]
    return v.sources[0], v.frame


def unlabelled_items(predictor: Predictor, data: SegDataset, should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[int, int, str], None] | None = None,
                     keep: int = MAX_PREDICTED) -> tuple[list[ReviewItem], list[tuple[str, str]]]:
    """The dataset's images without a mask, predicted (averaged with the mirror image) and ranked
    by uncertainty, most uncertain first: the `keep` first as items at the training size (a
    patch run: at full size), and (file, reason) for each that could not be read. Scans are not
    predicted here."""
    spec = parse_window(predictor.window)
    scored, problems = [], []
    files = [f for f in data.unlabelled if not (is_volume_file(f) or Path(f).is_dir())]
    for done, source in enumerate(files):
        if should_stop and should_stop():
            raise Cancelled()
        if progress:
            progress(done, len(files), f"Predicting {Path(source).name}")
        try:
            frames = read_image(Path(source), spec, defer_ct=isinstance(spec, tuple)).frames
        except DataError as e:
            problems.append((source, str(e)))
            continue
        for f, frame in enumerate(frames):
            if predictor.patches is None:
                x = predictor.prepare(frame)[None]
                probs = predictor.probabilities_resized(x, flip=True)
                entropy = entropy_map(predictor.calibrated(probs))[0]
                pred = probs.argmax(dim=1)[0].cpu().numpy().astype(np.uint8)
                shown = display_image(x[0])
            else:
                probs = predictor.probabilities(frame, flip=True)
                entropy, pred = entropy_map(predictor.calibrated(probs)), probs.argmax(axis=0).astype(np.uint8)
                shown = windowed(frame, spec)
            name = Path(source).stem + (f"#{f}" if len(frames) > 1 else "")
            scored.append(ReviewItem(-1, name, shown, None, pred, (), float("nan"), source, f,
                                     uncertainty=score(entropy), uncertainty_map=to_uint8(entropy)))
            scored.sort(key=lambda it: -it.uncertainty)
            for it in scored[keep:]:  # hold images for the most uncertain only
                it.image = it.pred = it.uncertainty_map = None
    return [it for it in scored if it.pred is not None], problems


def predicted_items(report: PredictReport, window: str, codes: Sequence[str] = (),
                    should_stop: Callable[[], bool] | None = None) -> list[ReviewItem]:
    """The first MAX_PREDICTED masks a folder prediction wrote, over their images (no Dice:
    there is no ground truth), in the order they were written."""
    spec, items, frames_of = parse_window(window), [], {}
    for mask_path, (source, frame) in list(zip(report.written, report.sources))[:MAX_PREDICTED]:
        if should_stop and should_stop():
            raise Cancelled()
        if is_volume_file(source) or Path(source).is_dir():  # a scan file, or a DICOM series
            if sum(it.is_scan for it in items) < MAX_PREDICTED_SCANS:
                items += _predicted_scan(mask_path, source, spec, list(codes))
            continue
        if source not in frames_of:
            try:
                frames_of = {source: read_image(Path(source), spec).frames}  # one file at a time
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


def _predicted_scan(mask_path: str, source: str, window, codes: list[str]) -> list[ReviewItem]:
    """A predicted scan at its full size, axial, for the viewer (shown through the run's CT
    window when it has one, else its own percentiles)."""
    try:
        scan = read_scan(source)
        labels = read_scan(mask_path, mask=True).array.astype(np.uint8)
    except DataError:
        return []
    values = scan.array[0] if scan.array.ndim == 4 else scan.array
    shown = window if isinstance(window, tuple) else percentile_window(values)
    ml = tuple((k, v, float("nan")) for k, _, v in structure_volumes(labels, scan.spacing, codes))
    image, labels = _for_display(apply_window(values, *shown), labels)
    return [ReviewItem(-1, volume_stem(mask_path), image, None, labels, (), float("nan"), source,
                       volume_ml=ml)]


def _for_display(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Z, H, W) image and labels with at most DISPLAY_SIDE pixels a side (a review of many
    large scans must not hold them all at full size)."""
    h, w = image.shape[1:]
    if max(h, w) <= DISPLAY_SIDE:
        return image, labels
    size = (round(w * DISPLAY_SIDE / max(h, w)), round(h * DISPLAY_SIDE / max(h, w)))
    small = np.stack([np.asarray(Image.fromarray(p).resize(size, Image.BILINEAR)) for p in image])
    return small, np.stack([np.asarray(Image.fromarray(p).resize(size, Image.NEAREST)) for p in labels])
