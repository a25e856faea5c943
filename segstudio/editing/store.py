"""Loading a review item's mask for correction at the image's original size, and saving it to the
corrections folder in the user's own convention (data/corrections.py), with its provenance."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import __version__
from ..data.corrections import CorrectionsFolder, correction_name, encode, masks_folder
from ..data.items import SegDataset, put_slice, take_slice
from ..data.masks import analyse_mask
from ..data.reader import read_file
from ..data.volume import is_volume_file, read_volume
from ..data.windowing import apply_window, parse_window, percentile_window
from ..errors import DataError
from ..inference.predictor import Predictor
from ..inference.review import ReviewItem
from ..inference.uncertainty import entropy_map, to_uint8
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
        """Mask values (as in the user's files; a label `volume`) -> class indices; a value no
        class has is foreground in a binary dataset, else background."""
        values = np.asarray(values)
        colour = values.ndim == 3 and not volume
        if self.instances:
            return (values.any(axis=-1) if colour else values != 0).astype(np.uint8)
        frame = analyse_mask(values, volume=volume)
        keys = [tuple(k) if isinstance(k, list) else k for k in self.class_keys]
        lut = np.zeros(len(frame.keys), np.uint8)
        for i, key in enumerate(frame.keys):
            probe = key if not isinstance(keys[0], tuple) or isinstance(key, tuple) else (key, key, key)
            if probe in keys:
                lut[i] = keys.index(probe)
            elif len(self.codes) == 2 and probe not in (0, (0, 0, 0)):
                lut[i] = 1
        return lut[frame.local]


def item_key(item: ReviewItem) -> str:
    return item.source if item.is_scan else f"{item.source}#{item.frame}"


def load_mask(item: ReviewItem, ctx: MaskContext, predictor: Predictor | None,
              data: SegDataset | None = None) -> EditableMask:
    """The item's labels at the original size, ready to edit: its mask (or correction), or for
    an image without one the prediction; unsaved edits left by a crash are restored."""
    mask = _load_scan(item, ctx, predictor, data) if item.is_scan else _load_image(item, ctx, predictor)
    folder = CorrectionsFolder(_masks_dir(mask, ctx))
    planes = folder.recover(mask.key)
    if planes:
        for k, plane in planes.items():
            if k < len(mask.labels) and plane.shape == mask.labels.shape[1:]:
                mask.labels[k] = plane
                mask.dirty.add(k)
        mask.recovered = bool(mask.dirty)
    return mask


def _load_image(item: ReviewItem, ctx: MaskContext, predictor: Predictor | None) -> EditableMask:
    window = parse_window(predictor.window) if predictor is not None else "auto"
    frames = read_file(Path(item.source), window, defer_ct=isinstance(window, tuple)).frames
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
    if item.mask_file:
        raw = read_file(Path(item.mask_file), mask=True).frames
        if len(raw) != len(frames) or raw[item.frame].shape[:2] != (h, w):
            raise DataError(f"the mask {Path(item.mask_file).name} does not match the image's size")
        truth = ctx.decode(raw[item.frame])[None]
    labels = truth.copy() if truth is not None else (pred.copy() if pred is not None else np.zeros((1, h, w), np.uint8))
    return EditableMask(item_key(item), item.name, shown[None], labels, truth, pred, uncertainty, item.mask_file,
                        item.source, item.frame, started_from="ground truth" if truth is not None else
                        "prediction" if pred is not None else "empty")


def _load_scan(item: ReviewItem, ctx: MaskContext, predictor: Predictor | None,
               data: SegDataset | None) -> EditableMask:
    if not is_volume_file(item.source):
        raise DataError("correcting DICOM series is not supported yet: correct the NIfTI the "
                        "prediction wrote, or use a NIfTI/NRRD dataset")
    scan = read_volume(item.source)
    values = scan.array[0] if scan.array.ndim == 4 else scan.array
    window = parse_window(predictor.window) if predictor is not None else "auto"
    ct = isinstance(window, tuple) and float(values.min()) < -500  # HU (air): the run's CT window
    shown_vol = apply_window(values, *(window if ct else percentile_window(values)))
    axis = ctx.axis
    n = values.shape[axis]
    image = np.stack([take_slice(shown_vol, axis, k) for k in range(n)])
    truth = None
    if item.mask_file:
        label = read_volume(item.mask_file, mask=True).array
        if label.shape != values.shape:
            raise DataError(f"the label {Path(item.mask_file).name} does not match the scan's size")
        classes = ctx.decode(label, volume=True)
        truth = np.stack([take_slice(classes, axis, k) for k in range(n)])
    h, w = image.shape[1:3]
    pred = None
    if item.pred is not None and len(item.pred) == n:  # the review's slices, brought to full size
        pred = np.stack([np.asarray(Image.fromarray(p).resize((w, h), Image.NEAREST)) for p in item.pred])
    labels = truth.copy() if truth is not None else (pred.copy() if pred is not None else np.zeros((n, h, w), np.uint8))
    return EditableMask(item_key(item), item.name, image, labels, truth, pred, None, item.mask_file, item.source,
                        0, axis, "ground truth" if truth is not None else "prediction" if pred is not None else "empty")


def _masks_dir(mask: EditableMask, ctx: MaskContext) -> Path:
    return masks_folder(mask.mask_file) if mask.mask_file else Path(ctx.masks_dir)


def corrections_folder(mask: EditableMask, ctx: MaskContext) -> CorrectionsFolder:
    return CorrectionsFolder(_masks_dir(mask, ctx))


def autosave(mask: EditableMask, ctx: MaskContext, plane: int) -> None:
    """Keep an edited plane in the corrections folder's .autosave/ until the mask is saved."""
    corrections_folder(mask, ctx).autosave(mask.key, plane, mask.labels[plane])


def save_mask(mask: EditableMask, ctx: MaskContext) -> Path:
    """Write the mask to the corrections folder (atomically), record where it came from, and
    drop its autosave. The user's own mask file is never written."""
    if not ctx.masks_dir and not mask.mask_file:
        raise DataError("no masks folder is known for this dataset: the correction has nowhere to go")
    folder = corrections_folder(mask, ctx)
    name = correction_name(mask.mask_file, mask.source, ctx.mask_suffix)
    provenance = {"image": mask.source, "frame": mask.frame, "corrects": mask.mask_file,
                  "started_from": mask.started_from, "run": ctx.run_dir, "strokes": mask.strokes,
                  "classes": list(ctx.codes), "segstudio": __version__}
    if mask.is_scan or is_volume_file(mask.source):
        like = read_volume(mask.mask_file, mask=True) if mask.mask_file else read_volume(mask.source)
        canonical = np.zeros(like.shape, np.uint8)
        for k in range(len(mask.labels)):
            put_slice(canonical, mask.axis, k, mask.labels[k])
        out = folder.save_volume(name, encode(canonical, ctx.class_keys, ctx.instances), like, provenance)
    else:
        like = mask.mask_file if mask.mask_file and Path(mask.mask_file).is_file() else None
        if like is not None and len(read_file(Path(like), mask=True).frames) > 1:
            raise DataError(f"{Path(like).name} holds several frames; correcting one frame of a "
                            "multi-frame mask is not supported yet")
        out = folder.save_mask(name, encode(mask.labels[0], ctx.class_keys, ctx.instances), provenance, like)
    folder.discard_autosave(mask.key)
    mask.saved()
    return out
