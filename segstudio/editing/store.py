"""Loading a review item's mask for correction at the image's original size, and saving it to the
corrections folder in the user's own convention (data/corrections.py), with its provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__
from ..data.corrections import CorrectionsFolder, correction_name, encode
from ..data.items import SegDataset
from ..data.masks import class_indices
from ..preprocess.slicing import put_slice, take_slice
from ..preprocess.windowing import apply_window, parse_window, percentile_window
from ..errors import DataError
from ..inference.predictor import Predictor
from ..inference.review import ReviewItem
from ..inference.uncertainty import entropy_map, to_uint8
from ..io.registry import is_volume_file, read_image, read_scan
from .labels import EditableMask


@dataclass
class MaskContext:
    """What reading and writing masks in the dataset's convention needs."""

    codes: list[str]
    class_keys: list          # the mask value of each class (an (r, g, b) list for colours)
    instances: bool           # instance labels: written one value per connected object
    masks_dir: str            # the user's masks folder (corrections go beside it)
    run_dir: str = ""         # the run whose model predicted the masks
    axis: int = 0             # scans: the axis slices are taken across
    mask_suffix: str = ".png"  # the format of a new mask (for an image that had none)

    @classmethod
    def of(cls, data: SegDataset, run_dir: str = "") -> "MaskContext":
        suffixes = [Path(v.label).suffix for v in data.volumes[:50] if v.label]
        if data.volumetric:
            suffixes = [".nii.gz" if str(v.label).endswith(".nii.gz") else Path(v.label).suffix
                        for v in data.volumes[:50] if is_volume_file(v.label)]
        suffix = max(set(suffixes), key=suffixes.count) if suffixes else (".nii.gz" if data.volumetric else ".png")
        return cls(list(data.codes), list(data.class_keys), data.labels == "instances", data.masks_dir,
                   run_dir, data.axis, suffix)

    def decode(self, values: np.ndarray, volume: bool = False) -> np.ndarray:
        """Mask values (as in the user's files; a label `volume`) -> class indices."""
        return class_indices(values, self.class_keys, len(self.codes), self.instances, volume)


def item_key(item: ReviewItem) -> str:
    return item.source if item.is_scan else f"{item.source}#{item.frame}"


def _folder(ctx: MaskContext) -> CorrectionsFolder:
    if not ctx.masks_dir:
        raise DataError("no masks folder is known for this dataset: corrections have nowhere to go")
    return CorrectionsFolder(ctx.masks_dir)


def _name(item_or_mask, ctx: MaskContext, case: str = "") -> str:
    return correction_name(item_or_mask.mask_file, item_or_mask.source, ctx.mask_suffix, case)


def load_mask(item: ReviewItem, ctx: MaskContext, predictor: Predictor | None,
              data: SegDataset | None = None) -> EditableMask:
    """The item's labels at the original size, ready to edit: its correction when one was saved
    (also one saved since the dataset was loaded), else its mask, else (an image without one) the
    prediction; unsaved edits left by a crash are restored."""
    folder = _folder(ctx)
    saved = folder.path / _name(item, ctx, item.name if item.is_scan else "")
    truth_file = str(saved) if saved.is_file() else item.mask_file
    mask = (_load_scan(item, ctx, predictor, truth_file) if item.is_scan
            else _load_image(item, ctx, predictor, truth_file))
    mask.ctx = ctx
    for k, plane in folder.recover(mask.key).items():
        if k < len(mask.labels) and plane.shape == mask.labels.shape[1:]:
            mask.labels[k] = plane
            mask.dirty.add(k)
    mask.recovered = bool(mask.dirty)
    return mask


def _load_image(item: ReviewItem, ctx: MaskContext, predictor: Predictor | None, truth_file: str) -> EditableMask:
    window = parse_window(predictor.window) if predictor is not None else "auto"
    frames = read_image(Path(item.source), window, defer_ct=isinstance(window, tuple)).frames
    if item.frame >= len(frames):
        raise DataError(f"{Path(item.source).name} has no frame {item.frame + 1}")
    model_image = frames[item.frame]
    shown = apply_window(model_image, *window) if model_image.dtype == np.int16 else model_image
    h, w = shown.shape[:2]
    pred = uncertainty = None
    if predictor is not None:
        probs = predictor.probabilities(model_image)
        pred = probs.argmax(axis=0).astype(np.uint8)[None]
        uncertainty = to_uint8(entropy_map(probs))[None]
    truth = None
    if truth_file:
        raw = read_image(Path(truth_file), mask=True).frames
        if len(raw) != len(frames) or raw[item.frame].shape[:2] != (h, w):
            raise DataError(f"the mask {Path(truth_file).name} does not match the image's size")
        truth = ctx.decode(raw[item.frame])[None]
    labels = truth.copy() if truth is not None else (pred.copy() if pred is not None else np.zeros((1, h, w), np.uint8))
    return EditableMask(item_key(item), item.name, shown[None], labels, truth, pred, uncertainty, item.mask_file,
                        item.source, item.frame, started_from="ground truth" if truth is not None else
                        "prediction" if pred is not None else "empty", frames=len(frames))


def _load_scan(item: ReviewItem, ctx: MaskContext, predictor: Predictor | None, truth_file: str) -> EditableMask:
    if not is_volume_file(item.source):
        raise DataError("correcting DICOM series is not supported yet: correct the NIfTI the "
                        "prediction wrote, or use a NIfTI/NRRD dataset")
    scan = read_scan(item.source)
    values = scan.array[0] if scan.array.ndim == 4 else scan.array
    window = parse_window(predictor.window) if predictor is not None else "auto"
    ct = isinstance(window, tuple) and float(values.min()) < -500  # HU (air): the run's CT window
    shown_vol = apply_window(values, *(window if ct else percentile_window(values)))
    axis = ctx.axis
    n = values.shape[axis]
    image = np.stack([take_slice(shown_vol, axis, k) for k in range(n)])
    truth = None
    if truth_file:
        label = read_scan(truth_file, mask=True).array
        if label.shape != values.shape:
            raise DataError(f"the label {Path(truth_file).name} does not match the scan's size")
        classes = ctx.decode(label, volume=True)
        truth = np.stack([take_slice(classes, axis, k) for k in range(n)])
    h, w = image.shape[1:3]
    pred = None
    if item.pred is not None and len(item.pred) == n:  # the review's slices, brought to full size
        pred = np.stack([np.asarray(Image.fromarray(p).resize((w, h), Image.NEAREST)) for p in item.pred])
    labels = truth.copy() if truth is not None else (pred.copy() if pred is not None else np.zeros((n, h, w), np.uint8))
    return EditableMask(item_key(item), item.name, image, labels, truth, pred, None, item.mask_file, item.source,
                        0, axis, "ground truth" if truth is not None else "prediction" if pred is not None else "empty")


def corrections_folder(mask: EditableMask) -> CorrectionsFolder:
    return _folder(mask.ctx)


def autosave(mask: EditableMask, plane: int) -> None:
    """Keep an edited plane in the corrections folder's .autosave/ until the mask is saved."""
    corrections_folder(mask).autosave(mask.key, plane, mask.labels[plane])


@dataclass
class SaveJob:
    """A mask to save, as it was when Save was pressed (painting may go on while it is written)."""

    mask: EditableMask
    labels: np.ndarray
    version: int


def snapshot(mask: EditableMask) -> SaveJob:
    return SaveJob(mask, mask.labels.copy(), mask.version)


def write_job(job: SaveJob) -> Path:
    """Write a snapshot to the corrections folder (atomically) with its provenance; no state of
    the mask changes (see finish_job). The user's own mask file is never written."""
    mask, ctx = job.mask, job.mask.ctx
    folder = _folder(ctx)
    own = mask.mask_file and os.path.realpath(Path(mask.mask_file).parent) != os.path.realpath(folder.path)
    protected = (mask.mask_file if own else "", ctx.masks_dir)  # an earlier correction may be replaced
    provenance = {"image": mask.source, "frame": mask.frame, "corrects": mask.mask_file,
                  "started_from": mask.started_from, "run": ctx.run_dir, "strokes": mask.strokes,
                  "classes": list(ctx.codes), "segstudio": __version__}
    if mask.is_scan or is_volume_file(mask.source):
        like = read_scan(mask.mask_file, mask=True) if mask.mask_file else read_scan(mask.source)
        canonical = np.zeros(like.shape, np.uint8)
        for k in range(len(job.labels)):
            put_slice(canonical, mask.axis, k, job.labels[k])
        return folder.save_volume(_name(mask, ctx, mask.name), encode(canonical, ctx.class_keys, ctx.instances),
                                  like, provenance, protected)
    like = mask.mask_file if mask.mask_file and Path(mask.mask_file).is_file() else None
    raw = read_image(Path(like), mask=True).frames if like is not None else []
    frames = len(raw) if like is not None else mask.frames
    if frames > 1:
        raise DataError(f"{Path(like or mask.source).name} holds {frames} frames; correcting one frame of a "
                        "multi-frame image is not supported yet")
    keys, dtype = _file_convention(np.asarray(raw[0]), ctx) if raw else (ctx.class_keys, None)
    values = encode(job.labels[0], keys, ctx.instances)
    if dtype is not None and values.ndim == 2 and dtype.kind in "ui" and dtype.itemsize > values.dtype.itemsize:
        values = values.astype(dtype)  # a 16-bit label file stays 16-bit
    return folder.save_mask(_name(mask, ctx), values, provenance, like, protected)


def _file_convention(raw: np.ndarray, ctx: MaskContext) -> tuple[list, np.dtype]:
    """The value each class has in this mask file (a dataset may mix 0/1 and 0/255 files; each
    correction keeps its own file's), and the file's sample type."""
    keys = list(ctx.class_keys)
    if raw.ndim == 2 and not ctx.instances:
        values, counts = np.unique(raw, return_counts=True)
        classes = ctx.decode(values[None, :])[0]
        for c in np.unique(classes):
            keys[int(c)] = int(values[classes == c][np.argmax(counts[classes == c])])
    return keys, raw.dtype


def finish_job(job: SaveJob) -> None:
    """After a snapshot was written: the mask is clean unless it was edited meanwhile (then it
    stays unsaved, with its autosave)."""
    if job.mask.version == job.version:
        corrections_folder(job.mask).discard_autosave(job.mask.key)
        job.mask.saved()


def save_mask(mask: EditableMask, ctx: MaskContext | None = None) -> Path:
    """Save now (snapshot, write, finish)."""
    if ctx is not None:
        mask.ctx = ctx
    job = snapshot(mask)
    out = write_job(job)
    finish_job(job)
    return out
