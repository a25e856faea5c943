"""Volumetric dataset layouts: Decathlon / nnU-Net raw, KiTS case folders, or two folders.

- Decathlon / nnU-Net: `imagesTr/` + `labelsTr/` (+ `dataset.json`); image `case.nii.gz` or one
  file per channel, `case_0000.nii.gz`, `case_0001.nii.gz`...; label `case.nii.gz`.
- KiTS: `case_00000/imaging.nii.gz` + `case_00000/segmentation.nii.gz`.
- Folders: images and labels paired by name; a label may drop the channel suffix or carry a mask
  suffix (`_seg`, `_label`, `_mask`, `_gt`).
- DICOM series: one subfolder (tree) of slices per case; its label a volume file or a DICOM SEG
  in the masks folder named after the case, or inside the case folder.
Problems (missing channels, duplicates, stray labels) are reported, never raised; a case without
a label is kept, unlabelled.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..io import dicom_seg
from ..io.dicom_series import is_series_folder, series_of
from ..io.registry import volume_files, volume_stem, volume_suffix
from .discovery import list_image_files
from .pairing import MASK_SUFFIX

CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")  # nnU-Net: case_0000, case_0001...
MAX_CHANNELS = 8  # more "_NNNN" files per name than this are numbered cases, not channels


@dataclass
class Case:
    name: str
    images: list[Path]              # one per input channel, in channel order
    label: Path | None = None


@dataclass
class Layout:
    kind: str                       # "decathlon", "kits" or "folders"
    cases: list[Case] = field(default_factory=list)
    class_names: list[str] | None = None  # by label value, from dataset.json
    modalities: list[str] = field(default_factory=list)  # per channel, from dataset.json ("CT", "T2"...)
    notes: list[str] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)  # (file or folder, reason)
    labels_dir: str = ""            # the labels' folder (corrections go beside it); see volume_layout


def detect_layout(root_or_images: str | Path, masks: str | Path | None = None) -> Layout:
    """The layout of a dataset folder (or of an images folder plus a `masks` folder).

    A Decathlon root, its imagesTr folder (alone or with its labelsTr) or a KiTS root is
    recognised by its structure; any other folder is paired with `masks`, or split into images and `_seg`-style labels when
    `masks` is None. Raises DataError only when a folder is missing or is a file.
    """
    root = Path(root_or_images)
    for folder in (root, masks):
        if folder is not None and not Path(folder).is_dir():
            raise DataError(f"{'not a folder' if Path(folder).exists() else 'folder not found'}: {folder}")
    in_decathlon = root.name.lower() == "imagestr" and _subdir(root.parent, "labelsTr") is not None
    # DICOM series folders make a dataset only of a folder without image files of its own (a
    # folder of DICOM or PNG slices next to subfolders is a 2-D dataset)
    flat = volume_files(root) or list_image_files(root)
    series = [] if flat else [d for d in _subdirs(root) if is_series_folder(d)]
    if series:
        return _dicom(series, Path(masks) if masks is not None else None)
    root_layout = (_decathlon if _subdir(root, "imagesTr") is not None
                   else _kits if any(_kits_files(d)[0] for d in _subdirs(root)) else None)
    if root_layout is not None:  # a dataset root holds its labels: a masks folder is not needed
        out = root_layout(root)
        if masks is not None:
            out.notes.append(f"{Path(masks).name}/ was not used: the {out.kind} layout holds its labels")
        return out
    if masks is not None and not (in_decathlon and Path(masks) == _subdir(root.parent, "labelsTr")):
        return _folders(volume_files(root), volume_files(masks))
    if in_decathlon:
        return _decathlon(root.parent)
    files = volume_files(root)
    return _folders([p for p in files if not _is_label_name(p)], [p for p in files if _is_label_name(p)])


def _dicom(series: list[Path], masks: Path | None) -> Layout:
    """Cases from DICOM series folders; labels from `masks` (by the case's name) or inside them."""
    out = Layout("dicom")
    labels = {}
    if masks is not None:
        for p in sorted(masks.iterdir()):
            if p.is_file() and not p.name.startswith(".") and (volume_suffix(p) or dicom_seg.is_seg_file(p)):
                labels.setdefault(MASK_SUFFIX.sub("", volume_stem(p)).casefold(), p)
    segs = []
    for folder in series:
        label = labels.get(folder.name.casefold())
        if label is None and masks is None:
            inside = volume_files(folder) or series_of(folder)[1]
            label = inside[0] if inside else None
        out.cases.append(Case(folder.name, [folder], label))
        if label is not None and not volume_suffix(label):
            segs.append(label)
    if segs:
        try:
            out.class_names = dicom_seg.class_names([dicom_seg.read(p) for p in segs])
        except DataError as e:
            out.problems.append((segs[0], str(e)))
    unlabelled = sum(c.label is None for c in out.cases)
    if unlabelled:
        out.notes.append(f"{unlabelled} DICOM series without a label (unlabelled)")
    return out


def _decathlon(root: Path) -> Layout:
    out = Layout("decathlon")
    expected = _read_dataset_json(root, out)
    images_dir, labels_dir = _subdir(root, "imagesTr"), _subdir(root, "labelsTr")
    if labels_dir is None:
        out.notes.append("no labelsTr folder: every case is unlabelled")
    images = volume_files(images_dir)
    if not any(CHANNEL.match(volume_stem(p)) for p in images):
        expected = None  # original Decathlon: all channels of a case in one 4-D file
    cases = _checked_channels(_channel_groups(images, out.problems), expected, out.problems)
    _add_cases(out, cases, volume_files(labels_dir) if labels_dir is not None else [])
    return out


def _kits(root: Path) -> Layout:
    out = Layout("kits")
    unlabelled = 0
    for folder in _subdirs(root):
        images, label = _kits_files(folder)
        if not images:
            if folder.name.lower().startswith("case"):
                out.problems.append((folder, "no imaging volume in the case folder"))
            continue
        if len(images) > 1:
            out.problems.append((folder, f"{len(images)} imaging volumes in one case folder"))
            continue
        out.cases.append(Case(folder.name, images, label))
        unlabelled += label is None
    if unlabelled:
        out.notes.append(f"{unlabelled} case(s) without a segmentation (unlabelled)")
    return out


def _kits_files(folder: Path) -> tuple[list[Path], Path | None]:
    """(imaging files, segmentation file or None) of a KiTS case folder."""
    files = volume_files(folder)
    images = [p for p in files if volume_stem(p).lower() == "imaging"]
    label = next((p for p in files if volume_stem(p).lower() == "segmentation"), None)
    return images, label


def _folders(images: list[Path], labels: list[Path]) -> Layout:
    out = Layout("folders")
    # "_0000" ends nnU-Net channel files but also plainly numbered cases (scan_0001): read it as a
    # channel when that pairs more labels or, without labels, when every name fits channels
    duplicates: list[tuple[Path, str]] = []
    groups = _channel_groups(images, duplicates)
    keys = {_label_key(p) for p in labels}
    hits = sum(name.casefold() in keys for name in groups)
    plain_hits = sum(volume_stem(p).casefold() in keys for p in images)
    fits = all(CHANNEL.match(volume_stem(p)) for p in images) and all(
        0 in chans and len(chans) <= MAX_CHANNELS for chans in groups.values())
    if hits > plain_hits or (not labels and images and fits):
        out.problems += duplicates
        cases = _checked_channels(groups, None, out.problems)
    else:
        cases = _unique(images, out.problems)
    _add_cases(out, cases, labels)
    return out


def _channel_groups(images: list[Path], problems: list) -> dict[str, dict[int, Path]]:
    """{case: {channel: file}} from nnU-Net-style names (a name without "_NNNN" is channel 0);
    a second file for the same channel is a problem."""
    cases: dict[str, dict[int, Path]] = {}
    for p in images:
        stem = volume_stem(p)
        m = CHANNEL.match(stem)
        name, channel = (m["case"], int(m["channel"])) if m else (stem, 0)
        chans = cases.setdefault(name, {})
        if channel in chans:
            problems.append((p, f"another file is channel {channel} of case {name}: {chans[channel].name}"))
        else:
            chans[channel] = p
    return cases


def _checked_channels(cases: dict[str, dict[int, Path]], expected: int | None,
                      problems: list) -> dict[str, dict[int, Path]]:
    """The cases with channels 0..expected-1 (default: the most common count); the others are
    problems."""
    if expected is None:
        expected = Counter(max(c) + 1 for c in cases.values()).most_common(1)[0][0] if cases else 1
    good = {}
    for name, chans in cases.items():
        first = chans[min(chans)]
        missing = [f"_{c:04d}" for c in range(max(expected, max(chans) + 1)) if c not in chans]
        if missing:
            problems.append((first, f"case {name} lacks channel file(s) {', '.join(missing)}"))
        elif len(chans) != expected:
            problems.append((first, f"case {name} has {len(chans)} channel(s), expected {expected}"))
        else:
            good[name] = chans
    return good


def _unique(images: list[Path], problems: list) -> dict[str, dict[int, Path]]:
    """{stem: {0: file}}; a second file with the same stem is a problem."""
    cases: dict[str, dict[int, Path]] = {}
    seen: dict[str, Path] = {}
    for p in images:
        stem = volume_stem(p)
        if stem.casefold() in seen:
            problems.append((p, f"another image has the same name: {seen[stem.casefold()].name}"))
        else:
            seen[stem.casefold()] = p
            cases[stem] = {0: p}
    return cases


def _add_cases(out: Layout, cases: dict[str, dict[int, Path]], labels: list[Path]) -> None:
    """Pair each case with the label of the same name; stray and duplicate labels are problems."""
    by_key: dict[str, Path] = {}
    for p in labels:
        key = _label_key(p)
        if key in by_key:
            out.problems.append((p, f"another label for the same case: {by_key[key].name}"))
        else:
            by_key[key] = p
    names = {name.casefold() for name in cases}
    for key, p in by_key.items():
        if key not in names:
            out.problems.append((p, "label without an image"))
    for name in sorted(cases):
        chans = cases[name]
        out.cases.append(Case(name, [chans[c] for c in sorted(chans)], by_key.get(name.casefold())))
    unlabelled = sum(c.label is None for c in out.cases)
    if labels and unlabelled:
        out.notes.append(f"{unlabelled} case(s) without a label (unlabelled)")
    elif not labels and out.cases:
        out.notes.append("no labels: every case is unlabelled")


def _read_dataset_json(root: Path, out: Layout) -> int | None:
    """Class names (Decathlon {"0": "liver"} or nnU-Net v2 {"liver": 0}) into `out`; returns
    the number of channels it lists, if any."""
    path = root / "dataset.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as e:
        out.problems.append((path, f"cannot read dataset.json ({e})"))
        return None
    labels = meta.get("labels")
    if isinstance(labels, dict) and labels:
        out.class_names = _class_names(labels)
        if out.class_names is None:
            out.notes.append("dataset.json labels are regions or not numbered: class names ignored")
    channels = meta.get("channel_names") or meta.get("modality")  # nnU-Net v2 / Decathlon
    if isinstance(channels, dict) and channels:
        out.notes.append("channels: " + ", ".join(f"{k} {v}" for k, v in sorted(channels.items())))
        out.modalities = [str(v) for _, v in sorted(channels.items(), key=lambda kv: str(kv[0]))]
        return len(channels)
    return None


def _class_names(labels: dict) -> list[str] | None:
    """Names by value, gaps named "class N"; None when values are not single integers."""
    try:
        if all(str(k).strip().isdigit() for k in labels):  # Decathlon: {"0": "background"}
            by_value = {int(k): str(v) for k, v in labels.items()}
        else:  # nnU-Net v2: {"background": 0}; region lists ([1, 2]) have no single value
            by_value = {int(v): str(k) for k, v in labels.items() if not isinstance(v, (list, bool))}
            if len(by_value) != len(labels):
                return None
    except (TypeError, ValueError):
        return None
    if min(by_value) < 0:
        return None
    return [by_value.get(i, f"class {i}") for i in range(max(by_value) + 1)]


def _label_key(path: Path) -> str:
    return MASK_SUFFIX.sub("", volume_stem(path)).casefold()


def _is_label_name(path: Path) -> bool:
    return MASK_SUFFIX.search(volume_stem(path)) is not None


def _subdir(root: Path, name: str) -> Path | None:
    """The subfolder `name` of `root`, matched case-insensitively."""
    return next((d for d in _subdirs(root) if d.name.lower() == name.lower()), None)


def _subdirs(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.name)
