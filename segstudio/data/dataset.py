"""Load a folder pair of 2-D images (paired by folder_pairs) into an in-memory, resized uint8
cache, with a report of everything found."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..config import DataConfig
from ..errors import Cancelled, DataError
from ..io.dicom_file import DEFERRED
from ..io.dicom_seg import NAMES_SOURCE, seg_frames
from ..io.registry import read_image

from .items import SegDataset, VolumeRef
from .discovery import skipped_entries, split_dataset_root
from .folder_pairs import find_pairs, list_folder
from .masks import (ClassMap, MaskFrame, analyse_mask, build_classes, decide_instances,
                    read_class_names, too_many_for_classes)
from .native import NativeStore
from .reader import frame_name
from .report import DatasetReport, Problem, training_blocker
from .folds import split_items
from ..preprocess.recipe import windowed
from ..preprocess.slicing import resize_image, resize_mask, scaled_shape
from ..preprocess.windowing import PERCENTILES, HUHistogram, format_window, parse_window
from ..tasks import ProgressFn, StopFn


INSPECT_SIZE = 32


@dataclass
class _Item:
    image: np.ndarray  # (C, S, S) uint8, or (1, S, S) int16 HU for a DEFERRED CT window
    mask: MaskFrame    # local index image resized to (S, S)
    name: str
    source: str
    frame: int
    group: str
    orig_size: tuple[int, int]
    mask_name: str     # the mask file (and frame), for the report
    label: str         # the mask file
    modality: str
    native: np.ndarray | None = None        # (C, h, w) at native resolution x scale (patch training)
    native_mask: np.ndarray | None = None   # (h, w) local index image at that size


@dataclass
class _Scan:
    items: list[_Item]
    report: DatasetReport
    classes: ClassMap | None
    train_idx: np.ndarray
    valid_idx: np.ndarray
    window: str
    unlabelled: list[str]


@dataclass
class _Windows:
    """How the images were windowed: counts per (modality, window used) and the CT histogram."""

    setting: str
    used: Counter
    hu: HUHistogram

    def count(self, image, n: int) -> None:
        if image.window:
            self.used[(image.modality, image.window)] += n


def load_dataset(cfg: DataConfig, size: int, progress: ProgressFn | None = None,
                 should_stop: StopFn | None = None, native_scale: float | None = None
                 ) -> tuple[SegDataset, DatasetReport]:
    """Decode every pair at `size` (3-D scans: every slice, see volume_dataset). DataError for a
    missing folder or when no pair is usable; Cancelled when `should_stop()` turns True; bad
    files only end up in the report. `native_scale`: 2-D images are also kept at their own size
    times that factor (`data.native`, for training on patches)."""
    from .volume_dataset import load_volumes, volume_layout

    cfg, note = _resolved(cfg)
    layout = volume_layout(cfg)
    try:
        if layout is not None:
            data, report = load_volumes(cfg, size, layout, progress, should_stop)
            report.notes[:0] = note
            return data, report
        scan = _scan(cfg, size, progress, should_stop, native_scale)
    except DataError as e:
        if e.report is not None:
            e.report.notes[:0] = note
        raise
    report = scan.report
    report.notes[:0] = note
    if not scan.items:
        raise DataError(_no_pairs_message(report), report=report)
    items = scan.items
    channels = 3 if any(it.image.shape[0] == 3 for it in items) else 1
    images = np.empty((len(items), channels, size, size), np.uint8)  # filled in place: one copy
    masks = np.empty((len(items), size, size), np.uint8)
    for k, it in enumerate(items):
        images[k] = it.image  # a gray (1, S, S) image broadcasts to 3 channels
        masks[k] = scan.classes.lut(it.mask)[it.mask.local]
    volumes = [VolumeRef(it.name, (it.source,), it.label, it.group, k, 1, (1, *it.orig_size),
                         frame=it.frame, modality=it.modality) for k, it in enumerate(items)]
    data = SegDataset(images, masks, volumes, list(scan.classes.codes), scan.train_idx,
                      scan.valid_idx, scan.window, size,
                      labels="instances" if scan.classes.instances else "classes",
                      class_keys=scan.classes.class_keys(), unlabelled=scan.unlabelled,
                      masks_dir=str(_folder("masks", cfg.masks)))
    if native_scale is not None:
        data.native = NativeStore([it.native for it in items],
                                  [scan.classes.lut(it.mask)[it.native_mask] for it in items], native_scale)
    return data, report


def inspect_dataset(cfg: DataConfig, progress: ProgressFn | None = None,
                    should_stop: StopFn | None = None) -> DatasetReport:
    """The report only (files are decoded, and cached at a tiny size). Without a masks folder,
    the images alone are checked. DataError only for a missing folder or an invalid window."""
    from .volume_dataset import inspect_volume_images, load_volumes, volume_layout

    cfg, note = _resolved(cfg)
    layout = volume_layout(cfg)
    if layout is not None and not any(c.label for c in layout.cases):
        report = inspect_volume_images(cfg, layout, progress, should_stop)
    elif layout is not None:
        try:
            report = load_volumes(cfg, INSPECT_SIZE, layout, progress, should_stop)[1]
        except DataError as e:
            if e.report is None:
                raise
            report = e.report
    elif not str(cfg.masks or "").strip():
        report = _scan_images(cfg, progress or (lambda done, total, message: None),
                              should_stop or (lambda: False))
    else:
        report = _scan(cfg, INSPECT_SIZE, progress, should_stop).report
    report.notes[:0] = note
    return report


def _resolved(cfg: DataConfig) -> tuple[DataConfig, list[str]]:
    """`cfg` with the folders to read when no masks folder was given (see split_dataset_root),
    and the note saying so (as a list: empty when there is none)."""
    images, masks, note = split_dataset_root(cfg.images, cfg.masks)
    if (images, masks) == (cfg.images, cfg.masks):
        return cfg, []
    return replace(cfg, images=images, masks=masks), [note] if note else []


def _scan_images(cfg: DataConfig, progress: ProgressFn, stop: StopFn) -> DatasetReport:
    """Decode every file of an images folder (no masks): counts, windows and unreadable files."""
    images_dir = _folder("images", cfg.images)
    windows = _Windows(cfg.window, Counter(), HUHistogram())
    window = parse_window(cfg.window)
    report = DatasetReport(str(images_dir), "", images_only=True)
    files = list_folder(images_dir)
    for done, path in enumerate(files):
        if stop():
            raise Cancelled()
        progress(done, len(files), f"Reading {path.name}")
        try:
            image = read_image(path, window, defer_ct=True)
        except DataError as e:
            report.unreadable.append(Problem(path.relative_to(images_dir).as_posix(), str(e), images=1))
            continue
        frames = image.frames
        report.n_images += len(frames)
        windows.count(image, len(frames))
        if image.window == DEFERRED:
            for hu in frames:
                windows.hu.add(hu)
    progress(len(files), len(files), "Done")
    report.notes += _window_notes(windows) + _skipped_note(images_dir, files)
    if not files:
        report.notes.append(_no_files_note(images_dir))
    return report


def _folder(label: str, value) -> Path:
    if not str(value or "").strip():
        raise DataError(f"No {label} folder given")
    p = Path(value).expanduser().absolute()
    if p.exists() and not p.is_dir():
        raise DataError(f"{label.capitalize()} folder is a file, not a folder: {p}")
    if not p.is_dir():
        raise DataError(f"{label.capitalize()} folder not found: {p}")
    return p


def _folders(cfg: DataConfig) -> tuple[Path, Path]:
    return _folder("images", cfg.images), _folder("masks", cfg.masks)


def _scan(cfg: DataConfig, size: int, progress: ProgressFn | None,
          should_stop: StopFn | None, native_scale: float | None = None) -> _Scan:
    images_dir, masks_dir = _folders(cfg)
    window = parse_window(cfg.window)
    progress = progress or (lambda done, total, message: None)
    progress(0, 0, "Listing files")
    report = DatasetReport(str(images_dir), str(masks_dir))
    rel = _relative(images_dir, masks_dir)
    stop = should_stop or (lambda: False)
    found = find_pairs(images_dir, masks_dir, rel, report, progress, stop)

    def read_mask(img: Path, msk: Path, n_frames: int) -> list[np.ndarray]:
        if msk in found.segs:
            return seg_frames(found.segs[msk], found.headers[img].sop_uid, n_frames,
                              found.seg_names)
        return read_image(msk, mask=True).frames

    items: list[_Item] = []
    windows = _Windows(cfg.window, Counter(), HUHistogram())
    total = len(found.pairing.pairs)
    for done, (img, msk) in enumerate(found.pairing.pairs):
        if stop():
            raise Cancelled()
        progress(done, total, f"Reading {img.name}")
        items += _read_pair(img, msk, read_mask, window, size, rel, report, windows, native_scale)
    progress(total, total, "Checking masks")

    classes, train_idx, valid_idx = None, np.zeros(0, np.int64), np.zeros(0, np.int64)
    names = (found.seg_names, NAMES_SOURCE) if found.segs else read_class_names(masks_dir)
    if items:
        items, classes = _classes(items, names, cfg.labels, report, rel(masks_dir))
    if classes is not None and cfg.class_names:
        report.notes.append(classes.rename(cfg.class_names))
    used_window = _apply_dataset_window(items, windows)
    if items:
        report.mask_convention = (f"DICOM SEG ({len(found.seg_names) - 1} segment label(s))"
                                  if found.segs else classes.convention)
        report.classes = classes.class_info([it.mask for it in items])
        report.notes += classes.notes
        train_idx, valid_idx, report.split, notes = split_items(
            [it.group for it in items], cfg, [set(classes.lut(it.mask).tolist()) - {0} for it in items])
        report.notes += notes
    report.notes += _window_notes(windows)
    listed = found.listed[images_dir]
    report.notes += _skipped_note(images_dir, listed) + ([] if listed else [_no_files_note(images_dir)])
    if masks_dir != images_dir:
        report.notes += _skipped_note(masks_dir, found.listed[masks_dir])
    report.n_pairs, report.n_train, report.n_valid = len(items), len(train_idx), len(valid_idx)
    report.cannot_train = training_blocker(report.n_pairs, report.n_train, report.n_valid)
    return _Scan(items, report, classes, train_idx, valid_idx,
                 used_window if used_window else cfg.window,
                 [str(p) for p in found.pairing.unmatched_images])


def _classes(items: list[_Item], names: tuple, mode: str, report: DatasetReport,
             masks_folder: str) -> tuple[list[_Item], ClassMap | None]:
    """One mask convention for the whole dataset (see masks.decide_instances); masks that do not
    fit it go to the report."""
    items = _one_kind(items, report)
    verdict = decide_instances([it.mask for it in items], mode, bool(names[0]))
    if not verdict[0]:
        kept = []
        for it in items:
            reason = too_many_for_classes(it.mask)
            if reason:
                report.other.append(Problem(it.mask_name, reason, images=1))
            else:
                kept.append(it)
        items = kept
    if not items:
        return [], None
    try:
        return items, build_classes([it.mask for it in items], *names, instances=verdict)
    except DataError as e:  # e.g. too many classes over all masks
        report.other.append(Problem(masks_folder, str(e), images=len(items)))
        return [], None


def _one_kind(items: list[_Item], report: DatasetReport) -> list[_Item]:
    """Colour masks and grey masks with foreground do not mix: the fewer of the two are
    reported (a grey mask of background only fits either)."""
    colour = [it for it in items if it.mask.colour]
    grey = [it for it in items if not it.mask.colour and it.mask.foreground]
    if not colour or not grey:
        return items
    odd, kind, other = (grey, "grey", "colour") if len(colour) > len(grey) else (colour, "colour", "grey")
    for it in odd:
        report.other.append(Problem(it.mask_name, f"a {kind} mask among {other} masks; its values "
                                                  "cannot be matched to their classes", images=1))
    dropped = {id(it) for it in odd}
    return [it for it in items if id(it) not in dropped]


def _apply_dataset_window(items: list[_Item], windows: _Windows) -> str:
    """Window the CT items kept in HU (resampled first: the recipe's order, recipe.image_input):
    with the fixed window when one was set, else one window for the dataset; returns the window
    computed for the dataset as "W/L" ("" when there was none)."""
    fixed = parse_window(windows.setting)
    computed = not isinstance(fixed, tuple) and windows.hu.images > 0
    if not computed and not isinstance(fixed, tuple):
        return ""  # no CT image was kept in HU
    window = windows.hu.window()[:2] if computed else fixed
    for it in items:  # only kept in HU (int16) when there is a window for them
        it.image = windowed(it.image, window)
        if it.native is not None:
            it.native = windowed(it.native, window)
    return format_window(*window) if computed else ""


def _read_pair(img: Path, msk: Path, read_mask, window, size: int, rel,
               report: DatasetReport, windows: _Windows, native_scale: float | None = None) -> list[_Item]:
    """The usable items of one image/mask pair; every problem goes to the report."""
    try:
        image = read_image(img, window, defer_ct=True)
    except DataError as e:
        report.unreadable.append(Problem(rel(img), str(e), images=1))
        report.n_images += 1
        report.n_masks += 1
        return []
    frames = image.frames
    report.n_images += len(frames)
    n = len(frames)
    try:
        mask_frames = read_mask(img, msk, n)
    except DataError as e:
        report.unreadable.append(Problem(rel(msk), str(e), images=n))
        report.n_masks += 1
        return []
    report.n_masks += len(mask_frames)
    if n != len(mask_frames):
        report.size_mismatch.append(Problem(rel(img), f"image has {n} frame(s), mask "
                                                      f"{msk.name} has {len(mask_frames)}", images=n))
        return []
    windows.count(image, n)
    items = []
    for f, (im, mk) in enumerate(zip(frames, mask_frames)):
        suffix = f"#{f}" if n > 1 else ""
        if im.shape[:2] != mk.shape[:2]:
            report.size_mismatch.append(Problem(
                rel(img) + suffix, f"image is {_wxh(im)} but mask {msk.name} is {_wxh(mk)}", images=1))
            continue
        try:
            frame = analyse_mask(mk)
        except DataError as e:
            report.other.append(Problem(rel(msk) + suffix, str(e), images=1))
            continue
        if image.window == DEFERRED:
            windows.hu.add(im, _foreground(frame))
        native = native_mask = None
        if native_scale is not None:  # resampled like the training-size image, windowed after
            shape = scaled_shape(im.shape, native_scale)  # as a patch run's plan.image_shape
            native, native_mask = resize_image(im, shape), resize_mask(frame.local, shape)
        frame.local = resize_mask(frame.local, size)
        items.append(_Item(resize_image(im, size), frame, frame_name(img, f, n), str(img), f,
                           image.group or img.stem, (int(im.shape[0]), int(im.shape[1])),
                           rel(msk) + suffix, str(msk), image.modality, native, native_mask))
    return items


def _foreground(frame: MaskFrame) -> np.ndarray:
    """Where a mask frame is not background (value 0, or black)."""
    background = [i for i, k in enumerate(frame.keys) if k in (0, (0, 0, 0))]
    return frame.local != background[0] if background else np.ones(frame.local.shape, bool)


def _relative(images_dir: Path, masks_dir: Path) -> Callable[[Path], str]:
    """Paths relative to the folders' common parent (just the name when they are one folder)."""
    base = Path(os.path.commonpath([images_dir, masks_dir]))
    if base == Path(base.anchor):  # unrelated folders
        return str

    def rel(p: Path) -> str:
        try:
            return p.relative_to(base).as_posix()
        except ValueError:  # e.g. the corrections folder beside a shared folder
            return str(p)
    return rel


_USED = {"file": "the file's own W/L", "percentile": f"percentile {PERCENTILES[0]:g}-{PERCENTILES[1]:g}"}


def _window_notes(windows: _Windows) -> list[str]:
    """What each group of DICOM images got, per modality."""
    if not windows.used:
        return []
    fixed = isinstance(parse_window(windows.setting), tuple)
    parts = []
    for (modality, used), n in sorted(windows.used.items()):
        if used == DEFERRED:
            width, level, source = windows.hu.window()
            text = (f"one window for the dataset, W {width:g} L {level:g} HU (the {PERCENTILES[0]:g}-"
                    f"{PERCENTILES[1]:g} percentiles of {source}, as nnU-Net does)")
        else:
            text = _USED.get(used, used)
            if fixed and used in _USED:
                text += " (HU windows apply to CT only)"
        parts.append(f"{modality or 'no modality'}: {text} for {n} image(s)")
    return [f"DICOM window ({windows.setting!r}): " + "; ".join(parts)]


def _skipped_note(folder: Path, listed: list[Path]) -> list[str]:
    """A note on what in `folder` was not read: files of other types and subfolders."""
    files, folders = skipped_entries(folder, listed)
    notes = []
    if files:
        shown = ", ".join(p.name for p in files[:3]) + (", …" if len(files) > 3 else "")
        notes.append(f"{len(files)} file(s) in {folder.name}/ of a type segstudio does not read "
                     f"were skipped ({shown})")
    if folders:
        shown = ", ".join(p.name for p in folders[:3]) + (", …" if len(folders) > 3 else "")
        notes.append(f"{len(folders)} subfolder(s) of {folder.name}/ were not searched ({shown})")
    return notes


def _no_files_note(folder: Path) -> str:
    return (f"No image files in {folder}: segstudio reads PNG, JPEG, TIFF, BMP and DICOM files "
            "directly in the folder")


def _wxh(arr: np.ndarray) -> str:
    return f"{arr.shape[1]}x{arr.shape[0]}"


def _no_pairs_message(report: DatasetReport) -> str:
    found = (f"No usable image/mask pairs: found {report.n_images} image(s) in "
             f"{report.images_dir} and {report.n_masks} mask(s) in {report.masks_dir}")
    if report.unmatched_images:
        found += (f"; {len(report.unmatched_images)} image(s) have no mask of the same name "
                  f"(first: {report.unmatched_images[0]})")
    problems = report.problems()
    if problems:
        found += f"; {len(problems)} problem(s), first: {problems[0].path}: {problems[0].reason}"
    return found
