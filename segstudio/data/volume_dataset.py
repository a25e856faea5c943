"""Load 3-D scans (NIfTI, NRRD, MetaImage) into a disk-backed cache of training-size slices.

Two passes keep memory bounded by one scan, never by the dataset: the first reads the labels (and
the images' headers) to check geometry and decide the mask convention and classes for the whole
dataset; the second reads each image once, normalises it, and writes its slices (across the
chosen axis) and their masks into memory-mapped arrays (data/slice_cache.py). A second load
with the same files and settings opens that cache without reading a scan.

Intensities: CT scans with the "auto" window share one HU window computed from the masks'
foreground (as for DICOM CT), a fixed W/L applies to CT only, and other modalities get the
0.5-99.5 percentiles of each scan.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..config import DataConfig
from ..errors import Cancelled, DataError
from ..io import dicom_seg
from ..io.registry import is_volume_file, read_channels, read_geometry, read_scan
from ..io.volume import Volume, check_same_geometry
from .corrections import corrected_masks, corrections_dir
from .items import SegDataset, VolumeRef
from .layouts import Case, Layout, detect_layout
from .masks import MaskFrame, analyse_mask, build_classes, decide_instances, read_class_names, too_many_for_classes
from .report import ClassInfo, DatasetReport, Problem, VolumeInfo, training_blocker
from .slice_cache import CacheWriter, RowFile, SliceCache, cache_key
from .folds import split_items
from ..preprocess.recipe import is_ct, scan_slice, scan_windows, windowed
from ..preprocess.slicing import AXES, resize_plane, take_slice
from ..preprocess.windowing import PERCENTILES, HUHistogram, format_window, parse_window, to_hu
from ..tasks import ProgressFn, StopFn



def volume_layout(cfg: DataConfig) -> Layout | None:
    """The 3-D layout of the data folders, or None when they hold no volume files (2-D data)."""
    images = Path(cfg.images).expanduser() if str(cfg.images or "").strip() else None
    masks = Path(cfg.masks).expanduser() if str(cfg.masks or "").strip() else None
    if images is None or not images.is_dir() or (masks is not None and not masks.is_dir()):
        return None
    try:
        layout = detect_layout(images, masks)
    except (DataError, OSError):
        return None
    if not layout.cases:
        return None
    with_corrections(layout, labels_folder(layout, masks))
    return layout


def labels_folder(layout: Layout, masks: Path | None) -> Path | None:
    """The folder the dataset's labels are in (their common folder: KiTS keeps one per case);
    its corrections go beside it (see corrections.py). None when no case has a label."""
    if masks is not None:
        return masks.expanduser().absolute()
    parents = [str(Path(c.label).expanduser().absolute().parent) for c in layout.cases if c.label is not None]
    return Path(os.path.commonpath(parents)) if parents else None


def with_corrections(layout: Layout, folder: Path | None) -> None:
    """Point each case at its corrected label volume (named after the case) when the corrections
    folder beside the labels folder has one; a correction labels a case that had none."""
    corrected = ({k: p for k, p in corrected_masks(folder).items() if is_volume_file(p)}
                 if folder is not None else {})
    n = n_new = 0
    for case in layout.cases:
        hit = corrected.get(case.name)
        if hit is not None:
            n, n_new = n + 1, n_new + (case.label is None)
            case.label = hit
    if n:
        layout.notes.append(f"{n} corrected label volume(s) from {corrections_dir(folder).name}/ used ({n - n_new} "
                            f"in place of the original, {n_new} for scans that had none); the labels folder "
                            "is unchanged")
    layout.labels_dir = str(folder or "")


@dataclass
class _Case:
    case: Case
    frame: MaskFrame              # the label volume's values (its local image dropped)
    geometry: Volume              # the image's header: canonical shape and affine
    channels: int
    first: int = 0
    modality: str = ""            # "CT" when read as CT, else what the dataset said
    foreground: list[bool] = None  # per slice written: its mask has foreground


def load_volumes(cfg: DataConfig, size: int, layout: Layout, progress: ProgressFn | None = None,
                 should_stop: StopFn | None = None, cache_root: Path | None = None
                 ) -> tuple[SegDataset, DatasetReport]:
    """Every usable labelled scan, sliced across `cfg.axis` at `size`. DataError when none is
    usable (with the report); Cancelled when asked to stop."""
    progress = progress or (lambda done, total, message: None)
    stop = should_stop or (lambda: False)
    axis = AXES.get(cfg.axis)
    if axis is None:
        raise DataError(f"Unknown slice axis {cfg.axis!r}: use {', '.join(AXES)}")
    window = parse_window(cfg.window)
    cases = [c for c in layout.cases if c.label is not None]
    unlabelled = [str(c.images[0]) for c in layout.cases if c.label is None]
    settings = {"size": size, "axis": cfg.axis, "window": cfg.window, "labels": cfg.labels,
                "class_names": list(cfg.class_names), "modalities": layout.modalities,
                # what the layout said (dataset.json names, unlabelled cases, problems) is in the
                # cached report too
                "layout": [layout.class_names, [c.name for c in layout.cases], layout.notes,
                           [(str(p), r) for p, r in layout.problems]]}
    key = cache_key([p for c in cases for p in (*c.images, c.label)], settings)
    cached = SliceCache.open(key, cache_root)
    if cached is not None:
        progress(1, 1, "Opened the cached slices")
        return _from_record(cached, cfg)
    report = _new_report(cfg, layout)
    report.n_unlabelled = len(layout.cases) - len(cases)
    found = _read_labels(cases, axis, report, progress, stop, layout.class_names)
    names = layout.class_names, ("DICOM SEG segment labels" if layout.kind == "dicom" else "dataset.json")
    if not names[0]:
        names = read_class_names(Path(cases[0].label).parent) if cases else (None, "")
    verdict = decide_instances([f.frame for f in found], cfg.labels, bool(names[0]))
    if not verdict[0]:
        found = _without(found, too_many_for_classes, report)
    if not found:
        raise DataError(_none_usable(report), report=report)
    classes = build_classes([f.frame for f in found], *names, instances=verdict)
    if cfg.class_names:
        report.notes.append(classes.rename(cfg.class_names))
    channels = Counter(f.channels for f in found).most_common(1)[0][0]
    found = _without(found, lambda f: "" if f.channels == channels else
                     f"{f.channels} channel(s), most scans have {channels}", report, image=True)
    n = 0
    for f in found:
        f.first, n = n, n + f.geometry.shape[axis]
    cache = SliceCache.create(key, n, channels, size, root=cache_root)
    try:
        ct_window, used = _write_slices(found, classes, cache, axis, size, window, layout, report,
                                        progress, stop)
    except BaseException:
        cache.discard()
        raise
    volumes = [VolumeRef(f.case.name, tuple(map(str, f.case.images)), str(f.case.label), f.case.name,
                         f.first, f.geometry.shape[axis], f.geometry.shape, f.geometry.spacing,
                         f.geometry.orientation, modality=f.modality) for f in found]
    report.classes = classes.class_info([f.frame for f in found])
    report.mask_convention = classes.convention
    report.notes += classes.notes + used
    codes = list(classes.codes)
    foreground = "".join("1" if fg else "0" for f in found for fg in f.foreground)
    record = {"volumes": [asdict(v) for v in volumes], "codes": codes, "report": report.to_dict(),
              "window": ct_window or cfg.window, "axis": axis, "foreground": foreground,
              "labels": "instances" if classes.instances else "classes", "class_keys": classes.class_keys(),
              "unlabelled": unlabelled, "masks_dir": layout.labels_dir}
    cache = cache.commit(key, record)
    return _from_record(cache, cfg)


def inspect_volume_images(cfg: DataConfig, layout: Layout, progress: ProgressFn | None = None,
                          should_stop: StopFn | None = None) -> DatasetReport:
    """Read every scan of a layout without labels: how many, and which cannot be read."""
    report = _new_report(cfg, layout)
    report.n_unlabelled, report.images_only = 0, True
    for done, case in enumerate(layout.cases):
        if should_stop and should_stop():
            raise Cancelled()
        if progress:
            progress(done, len(layout.cases), f"Reading {case.name}")
        try:
            read_channels(case.images) if len(case.images) > 1 else read_scan(case.images[0])
        except DataError as e:
            report.unreadable.append(Problem(_rel(case.images[0], report), str(e), images=1))
            report.n_images -= 1
    return report


def _new_report(cfg: DataConfig, layout: Layout) -> DatasetReport:
    report = DatasetReport(str(cfg.images), str(cfg.masks or cfg.images), layout=layout.kind)
    report.notes += layout.notes
    report.other += [Problem(_rel(p, report), reason) for p, reason in layout.problems]
    report.n_images = len(layout.cases)
    return report


def read_label(case: Case, image: Volume, names: list[str] | None) -> Volume:
    """A case's label volume: a label file, or a DICOM SEG of its DICOM series (in the geometry
    of `image`, the series read)."""
    if dicom_seg.is_seg_file(case.label):
        return dicom_seg.read_volume(case.label, image, names or ["background"])
    return read_scan(case.label, mask=True)


def _read_labels(cases: list[Case], axis: int, report: DatasetReport, progress: ProgressFn,
                 stop: StopFn, names: list[str] | None) -> list[_Case]:
    """Pass 1: each label's values and geometry against its image's header."""
    found = []
    for done, case in enumerate(cases):
        if stop():
            raise Cancelled()
        progress(done, len(cases), f"Reading labels ({case.name})")
        try:
            geometry = read_geometry(case.images[0])
        except DataError as e:
            report.unreadable.append(Problem(_rel(case.images[0], report), str(e), images=1))
            continue
        try:
            label = read_label(case, geometry, names)
        except DataError as e:
            report.unreadable.append(Problem(_rel(case.label, report), str(e), images=1))
            continue
        report.n_masks += 1
        reason = check_same_geometry(geometry, label)
        if reason:
            report.size_mismatch.append(Problem(_rel(case.label, report), reason, images=1))
            continue
        try:
            frame = analyse_mask(label.array, volume=True)
        except DataError as e:
            report.other.append(Problem(_rel(case.label, report), str(e), images=1))
            continue
        frame.local = np.zeros(0, np.uint8)  # only the values are needed from here on
        channels = len(case.images) if len(case.images) > 1 else (
            geometry.array.shape[0] if geometry.array.ndim == 4 else 1)
        found.append(_Case(case, frame, geometry, channels))
    progress(len(cases), len(cases), "Checking labels")
    return found


def _without(found: list[_Case], why: Callable, report: DatasetReport, image: bool = False) -> list[_Case]:
    """`found` without the scans `why` has a reason against (reported, against the label file, or
    the image's with `image`)."""
    kept = []
    for f in found:
        reason = why(f.frame if why is too_many_for_classes else f)
        if reason:
            report.other.append(Problem(_rel(f.case.images[0] if image else f.case.label, report), reason,
                                        images=1))
        else:
            kept.append(f)
    return kept


def _write_slices(found: list[_Case], classes, cache: CacheWriter, axis: int, size: int, window,
                  layout: Layout, report: DatasetReport, progress: ProgressFn, stop: StopFn
                  ) -> tuple[str, list[str]]:
    """Pass 2: normalise each scan and write its slices and masks; returns (the CT window as
    "W/L" when one was computed for the dataset, notes on the windows used). CT slices waiting
    for the dataset's window are kept in HU (int16) in a staging array beside the cache."""
    hist, counts = HUHistogram(), {"ct": 0, "fixed": 0, "percentile": 0}
    staging, deferred = None, []
    try:
        for done, f in enumerate(found):
            if stop():
                raise Cancelled()
            progress(done, len(found), f"Reading {f.case.name}")
            try:
                image = read_channels(f.case.images) if len(f.case.images) > 1 else read_scan(f.case.images[0])
                label = read_label(f.case, image, layout.class_names).array
            except DataError as e:
                report.unreadable.append(Problem(_rel(f.case.images[0], report), str(e), images=1))
                f.first = -1
                continue
            to_class = _class_map(classes, f.frame)
            f.foreground = []
            stack = image.array if image.array.ndim == 4 else image.array[None]
            ct = is_ct(image, layout.modalities)
            f.modality = "CT" if ct else ((layout.modalities or [""])[0] or image.modality)
            kind = "ct" if ct and window == "auto" else "fixed" if ct and isinstance(window, tuple) else "percentile"
            counts[kind] += 1
            windows = scan_windows(stack, kind != "percentile")  # the recipe's (recipe.scan_input)
            if kind == "ct" and staging is None:
                staging = RowFile(cache.folder / "hu.npy", cache.images.shape, np.int16)
            for k in range(f.geometry.shape[axis]):
                planes = take_slice(stack, axis, k)
                mask = to_class(take_slice(label, axis, k))
                i, small = f.first + k, resize_plane(mask, size, Image.NEAREST)
                cache.masks.write(i, small)
                f.foreground.append(bool(small.any()))  # what the cached slice holds
                values = scan_slice(planes, size, windows)  # CT: int16 HU, resized, to window
                if kind == "ct":  # kept in HU until the dataset's window is known
                    hist.add(to_hu(planes[0]), mask > 0)
                    staging.write(i, values)
                else:
                    cache.images.write(i, windowed(values, window))
            if kind == "ct":
                deferred.append(f)
        if all(f.first < 0 for f in found):
            raise DataError(_none_usable(report), report=report)
        return _window_deferred(deferred, staging, hist, cache, found, axis, counts, window)
    finally:  # the HU kept for the dataset's window are not needed once it is applied
        if staging is not None:
            staging.close()
            staging.path.unlink(missing_ok=True)


def _window_deferred(deferred, staging, hist, cache, found, axis, counts, window):
    """Window the CT scans kept in HU with the dataset's window; returns (it as "W/L" or "",
    notes on the windows used)."""
    ct_window = ""
    if deferred:
        width, level, _ = hist.window()
        ct_window = format_window(width, level)
        for f in deferred:
            rows = slice(f.first, f.first + f.geometry.shape[axis])
            cache.images.write(rows.start, windowed(staging.read(rows.start, rows.stop), (width, level)))
    _compact(found, cache, axis)
    return ct_window, _window_notes(counts, hist.window() if deferred else None, window)


def _compact(found: list[_Case], cache: CacheWriter, axis: int) -> None:
    """Drop the scans that could not be read in the second pass, moving the later scans' rows
    up so that the cache's first rows are the usable slices, in order."""
    if all(f.first >= 0 for f in found):
        return
    kept, row = [], 0
    for f in found:
        if f.first < 0:
            continue
        n = f.geometry.shape[axis]
        if f.first != row:
            cache.images.write(row, cache.images.read(f.first, f.first + n))
            cache.masks.write(row, cache.masks.read(f.first, f.first + n))
        f.first, row = row, row + n
        kept.append(f)
    found[:] = kept


def _class_map(classes, frame: MaskFrame) -> Callable[[np.ndarray], np.ndarray]:
    """Raw label values (any integers, as the scan's keys) -> class indices."""
    keys, index = np.asarray(frame.keys, dtype=np.int64), classes.lut(frame)
    return lambda values: index[np.searchsorted(keys, values)]


def _window_notes(counts: dict, ct: tuple | None, window) -> list[str]:
    parts = []
    if counts["ct"]:
        width, level, source = ct
        parts.append(f"CT: one window for the dataset, W {width:g} L {level:g} HU (the "
                     f"{PERCENTILES[0]:g}-{PERCENTILES[1]:g} percentiles of {source}) for {counts['ct']} scan(s)")
    if counts["fixed"]:
        parts.append(f"CT: {window[0]:g}/{window[1]:g} for {counts['fixed']} scan(s)")
    if counts["percentile"]:
        parts.append(f"other scans: percentile {PERCENTILES[0]:g}-{PERCENTILES[1]:g} of each scan for "
                     f"{counts['percentile']} scan(s)" + (" (HU windows apply to CT only)"
                                                          if isinstance(window, tuple) else ""))
    return ["Intensities: " + "; ".join(parts)] if parts else []


def _from_record(cache: SliceCache, cfg: DataConfig) -> tuple[SegDataset, DatasetReport]:
    """The dataset and report a committed cache describes, split with the current settings."""
    record = cache.record
    volumes = [VolumeRef(**{**v, "sources": tuple(v["sources"]), "shape": tuple(v["shape"]),
                            "spacing": tuple(v["spacing"])}) for v in record["volumes"]]
    report = _report_from_dict(record["report"])
    groups = [v.group for v in volumes for _ in range(v.n_slices)]
    train_idx, valid_idx, split, notes = split_items(groups, cfg)
    n_valid_scans = len({groups[i] for i in valid_idx})
    report.split = (f"by scan: {n_valid_scans} of {len(volumes)} scans in validation "
                    + (f"(fold {cfg.fold} of {cfg.folds}, seed {cfg.split_seed})" if cfg.folds >= 2 else
                       f"(target {cfg.valid_pct:.0%}, seed {cfg.split_seed})"))
    report.notes += notes
    report.n_pairs = len(volumes)
    report.n_train, report.n_valid = len(train_idx), len(valid_idx)
    report.volumes = [VolumeInfo(v.name, v.shape, v.spacing, v.orientation, v.n_slices) for v in volumes]
    report.cannot_train = training_blocker(len(volumes), len(train_idx), len(valid_idx), "labelled scans")
    n = sum(v.n_slices for v in volumes)
    data = SegDataset(cache.images[:n], cache.masks[:n], volumes, record["codes"], train_idx, valid_idx,
                      record["window"], int(cache.images.shape[-1]), volumetric=True,
                      axis=int(record["axis"]), context=int(cfg.context), labels=record["labels"],
                      has_foreground=np.frombuffer(record["foreground"].encode("ascii"), np.uint8) == ord("1"),
                      class_keys=record["class_keys"], unlabelled=record["unlabelled"], masks_dir=record["masks_dir"])
    return data, report


def _report_from_dict(d: dict) -> DatasetReport:
    report = DatasetReport(**{k: v for k, v in d.items()
                              if k not in ("classes", "unreadable", "size_mismatch", "other", "volumes")})
    report.classes = [ClassInfo(**c) for c in d.get("classes", [])]
    for name in ("unreadable", "size_mismatch", "other"):
        setattr(report, name, [Problem(**p) for p in d.get(name, [])])
    return report


def _rel(path, report: DatasetReport) -> str:
    """`path` relative to the images folder when it is inside it (as the 2-D report does)."""
    try:
        return Path(path).relative_to(Path(report.images_dir).expanduser()).as_posix()
    except ValueError:
        return str(path)


def _none_usable(report: DatasetReport) -> str:
    problems = report.problems()
    text = f"No usable labelled scans: {report.n_images} case(s) found in {report.images_dir}"
    if problems:
        text += f"; {len(problems)} problem(s), first: {problems[0].path}: {problems[0].reason}"
    return text
