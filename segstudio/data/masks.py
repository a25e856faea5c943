"""Mask conventions: binary 0/255 or 0/1, label images, instance labels, RGB/palette colours ->
class indices.

Each mask frame is first reduced to its distinct values ("keys": ints, or (r, g, b) colours) and a
local index image; `build_classes` then decides the convention for the whole dataset at once and
maps the union of keys to class indices.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import DataError
from .report import ClassInfo

MAX_LABELS = 32  # more distinct values than this in one mask is not a class label image
MAX_KEYS = 65535  # distinct values one (instance) mask may hold
NAME_FILES = ("classes.txt", "codes.txt")
LABEL_MODES = ("auto", "classes", "instances")  # DataConfig.labels
# Instance-label evidence (see looks_like_instances)
SINGLE_SHARE = 0.9     # share of a mask's values that are one connected object each
MANY_PER_MASK = 6      # objects per mask (on average) from which values may be instances
SPREAD = 0.15          # a value wandering this far (share of the image) from mask to mask is no class
MIN_OBJECT_PIXELS = 4  # the median object's area; noise has values of a pixel or two


@dataclass
class MaskFrame:
    keys: list            # sorted distinct values: ints (gray) or (r, g, b) tuples (colour)
    counts: list[int]     # pixels per key
    local: np.ndarray     # (H, W) index into keys: uint8, or uint16 beyond 256 keys
    thresholded: bool = False  # a JPEG-like 0/255 mask thresholded at 128
    single: int = 0       # foreground keys that are one connected object (gray, >= 2 keys)
    centroids: dict | None = None  # foreground key -> its centre, as a share of each axis

    @property
    def colour(self) -> bool:
        return bool(self.keys) and isinstance(self.keys[0], tuple)

    @property
    def foreground(self) -> list:
        """The keys other than 0 / black."""
        return [k for k in self.keys if k not in (0, (0, 0, 0))]


@dataclass
class ClassMap:
    codes: list[str]
    convention: str
    index: dict           # key -> class index
    values: list[str]     # original value(s) per class, for the report
    notes: list[str]
    colour: bool = False  # keys are (r, g, b); gray frames map through (v, v, v)
    instances: bool = False  # instance labels read as foreground/background

    def lut(self, frame: MaskFrame) -> np.ndarray:
        """Local index -> class index lookup table for one frame."""
        if self.instances:
            return (np.asarray(frame.keys) != 0).astype(np.uint8)
        return np.array([self.index[_as_colour(k) if self.colour else k] for k in frame.keys],
                        dtype=np.uint8)

    def class_keys(self) -> list:
        """The mask value written for each class (the smallest value read as it; an (r, g, b)
        list for colour masks): corrections are saved in the user's own convention."""
        if self.instances:
            return [0, 1]  # each object gets its own value when written (corrections.encode)
        keys: dict[int, object] = {}
        for key, k in sorted(self.index.items(), key=lambda kv: str(kv[0]) if self.colour else kv[0]):
            keys.setdefault(k, list(key) if self.colour else int(key))
        return [keys.get(k, [0, 0, 0] if self.colour else k) for k in range(len(self.codes))]

    def rename(self, names: list[str]) -> str:
        """Give the foreground classes the user's names (in class order); returns a note."""
        n = len(self.codes) - 1
        self.codes = [self.codes[0]] + list(names[:n]) + self.codes[1 + len(names):]
        extra = f" ({len(names)} names for {n} classes)" if len(names) != n else ""
        return f"class names from the settings{extra}"

    def class_info(self, frames: list[MaskFrame]) -> list[ClassInfo]:
        """Per-class pixel share over `frames`."""
        counts = np.zeros(len(self.codes), dtype=np.int64)
        for f in frames:
            np.add.at(counts, self.lut(f), np.asarray(f.counts, dtype=np.int64))
        total = max(int(counts.sum()), 1)
        return [ClassInfo(i, name, self.values[i], float(counts[i]) / total)
                for i, name in enumerate(self.codes)]


def analyse_mask(arr: np.ndarray, volume: bool = False) -> MaskFrame:
    """Distinct values and local index image of one raw mask frame (or a whole label volume,
    `volume=True`); DataError if not a label mask."""
    if arr.ndim == 3 and not volume:
        if arr.dtype != np.uint8:
            raise DataError(f"colour mask with {arr.dtype} samples; expected 8-bit colours")
        packed = (arr[..., 0].astype(np.uint32) << 16) | (arr[..., 1].astype(np.uint32) << 8) | arr[..., 2]
        uniq, inverse, counts = np.unique(packed, return_inverse=True, return_counts=True)
        if len(uniq) > MAX_LABELS:
            raise DataError(f"mask has {len(uniq)} distinct colours; expected a few class colours")
        keys = [(int(u >> 16), int(u >> 8 & 255), int(u & 255)) for u in uniq]
        return MaskFrame(keys, counts.tolist(), inverse.reshape(arr.shape[:2]).astype(np.uint8))
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.round(arr)):
            raise DataError("mask has non-integer values; expected class labels")
        arr = arr.astype(np.int64)
    if arr.dtype == np.bool_:
        arr = arr.view(np.uint8)
    keys, counts, local = _distinct(arr)
    if len(keys) > MAX_KEYS:
        raise DataError(f"mask has {len(keys)} distinct values; expected class or instance labels")
    frame = MaskFrame(keys, counts, local)
    if len(frame.foreground) >= 2:
        frame.single = _single_objects(local, keys)
        frame.centroids = _centroids(local, keys)
    if len(keys) > MAX_LABELS and not _objects(frame) and _jpeg_like(arr):
        keys, counts, local = _distinct((arr >= 128).astype(np.uint8) * 255)
        return MaskFrame(keys, counts, local, thresholded=True)
    return frame


def _objects(frame: MaskFrame) -> bool:
    """Nearly every foreground value is one connected object of a few pixels or more (instance
    labels; a lossy-compressed mask's stray values are scattered pixels)."""
    areas = [c for k, c in zip(frame.keys, frame.counts) if k != 0]
    return (len(areas) >= 2 and frame.single >= SINGLE_SHARE * len(areas)
            and np.median(areas) >= MIN_OBJECT_PIXELS)


def too_many_for_classes(frame: MaskFrame) -> str:
    """The reason a frame cannot be a class label image ("" when it can)."""
    if len(frame.keys) <= MAX_LABELS:
        return ""
    return (f"mask has {len(frame.keys)} distinct values; expected a few class labels "
            "(for instance labels choose Mask values 'Instances', or --labels instances)")


def looks_like_instances(frames: list[MaskFrame]) -> tuple[bool, str]:
    """(decision, why) for instance labels: each object its own value, as microscopy tools write
    them. Evidence: nearly every value is one connected object of a few pixels or more, masks
    hold many of them, and a value does not keep its place from mask to mask (an organ's or a
    tissue's label does). Masks of a few objects each stay classes: ambiguous, so the report
    says what was decided and the setting overrides it."""
    rich = [f for f in frames if not f.colour and len(f.foreground) >= 2]
    if not rich:
        return False, "no mask has two or more foreground values"
    areas = [c for f in rich for k, c in zip(f.keys, f.counts) if k != 0]
    if np.median(areas) < MIN_OBJECT_PIXELS:
        return False, "the values cover a pixel or two each (noise, not objects)"
    single = sum(f.single for f in rich) / len(areas)
    if single < SINGLE_SHARE:
        return False, f"only {single:.0%} of the values are single connected objects"
    most = max(len(f.foreground) for f in rich)
    if most > MAX_LABELS:
        return True, f"up to {most} values per mask, {single:.0%} of them single objects"
    labelled = [len(f.foreground) for f in frames if not f.colour and f.foreground]
    per_mask = float(np.mean(labelled))
    if per_mask < MANY_PER_MASK:
        return False, f"{per_mask:.1f} values per mask on average"
    spread = _spread(rich)
    if spread < SPREAD:
        return False, "each value keeps its place from mask to mask"
    return True, (f"{per_mask:.0f} values per mask on average, {single:.0%} of them single objects, "
                  "a value's place changing from mask to mask")


def _spread(frames: list[MaskFrame]) -> float:
    """How far a value's centre moves between the masks it appears in (root mean square, as a
    share of the image), averaged over the values in two or more masks; inf when none repeats."""
    places: dict = {}
    for f in frames:
        for key, centre in (f.centroids or {}).items():
            places.setdefault(key, []).append(centre)
    moves = [np.sqrt(((np.asarray(c) - np.mean(c, axis=0)) ** 2).sum(axis=1).mean())
             for c in places.values() if len(c) >= 2]
    return float(np.mean(moves)) if moves else float("inf")


def _centroids(local: np.ndarray, keys: list) -> dict:
    """Each foreground key's centre of mass, as a share of each axis."""
    index = [i for i, k in enumerate(keys) if k not in (0, (0, 0, 0))]
    centres = ndimage.center_of_mass(np.ones(local.shape, np.uint8), local, index)
    scale = np.asarray(local.shape, dtype=np.float64)
    return {keys[i]: tuple(np.asarray(c) / scale) for i, c in zip(index, centres)}


def _single_objects(local: np.ndarray, keys: list) -> int:
    """How many foreground keys form exactly one connected region (8-connected in 2-D,
    26-connected in 3-D)."""
    eight = np.ones((3,) * local.ndim, dtype=bool)
    count = 0
    for i, box in enumerate(ndimage.find_objects(local.astype(np.int32) + 1), start=0):
        if box is None or keys[i] == 0:
            continue
        _, n = ndimage.label(local[box] == i, structure=eight)
        count += n == 1
    return count


def read_class_names(masks_dir: Path) -> tuple[list[str] | None, str]:
    """Names from classes.txt / codes.txt in the mask folder (one per line, index order)."""
    for name in NAME_FILES:
        p = masks_dir / name
        if p.is_file():
            lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
            names = [s.strip() for s in lines if s.strip()]
            if names:
                return names, name
    return None, ""


def decide_instances(frames: list[MaskFrame], mode: str, named: bool) -> tuple[bool, str]:
    """(instances?, why) for the whole dataset. `mode` (DataConfig.labels): "instances" reads
    every non-zero value as foreground, "classes" keeps the values as classes, "auto" decides
    with `looks_like_instances` unless class names were given (names mean classes)."""
    if mode not in LABEL_MODES:
        raise DataError(f"Unknown mask values setting {mode!r}: use {', '.join(LABEL_MODES)}")
    if mode != "auto":
        return mode == "instances", "chosen in the settings"
    if named:
        return False, "class names were given"
    return looks_like_instances(frames)


def build_classes(frames: list[MaskFrame], names: list[str] | None = None,
                  names_file: str = "", instances: tuple[bool, str] = (False, "")) -> ClassMap:
    """The dataset's mask convention and class list from all usable mask frames; `instances`
    is `decide_instances`' verdict, which holds for every frame."""
    notes = []
    if any(f.thresholded for f in frames):
        notes.append("JPEG-like masks (values near 0 and 255) thresholded at 128")
    instances, why = instances
    if instances and not any(f.colour for f in frames):
        cmap = _instance_classes(frames, why)
    elif any(f.colour for f in frames):
        cmap = _colour_classes(frames)
    else:
        keys = sorted({k for f in frames for k in f.keys} | {0})
        kinds = sorted({_binary_kind(f.keys) for f in frames} - {"empty"}, key=str)
        binary = None not in kinds
        convention = _gray_convention(kinds, keys)
        if names and keys[-1] < len(names):  # the names file numbers the values
            cmap = ClassMap(list(names), convention, {k: k for k in keys},
                            [str(i) for i in range(len(names))], [])
            names = None
        elif binary:
            value = "/".join(k.split("/")[1] for k in kinds) or "255"
            cmap = ClassMap(["background", "foreground"], convention,
                            {k: int(k != 0) for k in keys}, ["0", value], [])
        else:
            cmap = ClassMap(["background"] + [f"class {k}" for k in keys[1:]], convention,
                            {k: i for i, k in enumerate(keys)}, [str(k) for k in keys], [])
    if len(cmap.codes) > 255:
        raise DataError(f"{len(cmap.codes)} classes found; at most 255 are supported (for instance "
                        "labels choose Mask values 'Instances', or --labels instances)")
    if names:
        if len(names) != len(cmap.codes):
            notes.append(f"{names_file} has {len(names)} names for {len(cmap.codes)} classes")
        cmap.codes = names[:len(cmap.codes)] + cmap.codes[len(names):]
    if names_file:
        notes.append(f"class names from {names_file}")
    cmap.notes = notes + cmap.notes
    return cmap


def _instance_classes(frames: list[MaskFrame], why: str) -> ClassMap:
    objects = sum(len(f.foreground) for f in frames)
    top = max((k for f in frames for k in f.foreground), default=0)
    note = (f"the masks hold instance labels (each object its own value; {why}): trained as "
            "foreground vs background. To keep each value as a class, choose Mask values 'Each value "
            "is a class' (or --labels classes).")
    return ClassMap(["background", "foreground"],
                    f"instance labels ({objects} objects in {len(frames)} masks) as foreground",
                    {}, ["0", f"1–{top}" if top > 1 else "1"], [note], instances=True)


def _colour_classes(frames: list[MaskFrame]) -> ClassMap:
    black = (0, 0, 0)
    keys = sorted({_as_colour(k) for f in frames for k in f.keys} - {black})
    index = {k: i for i, k in enumerate([black] + keys)}
    values = ["#%02x%02x%02x" % k for k in [black] + keys]
    notes = [] if all(f.colour for f in frames) else ["grayscale masks read as gray colours"]
    return ClassMap(["background"] + [f"class {v}" for v in values[1:]],
                    f"RGB colours ({len(keys)} + black background)", index, values, notes,
                    colour=True)


def _as_colour(key) -> tuple:
    return key if isinstance(key, tuple) else (key, key, key)


def _binary_kind(keys: list[int]) -> str | None:
    """"0/1", "0/255", "empty" (background only) or None for a frame's distinct values."""
    s = set(keys) - {0}
    return {frozenset(): "empty", frozenset({1}): "0/1", frozenset({255}): "0/255"}.get(frozenset(s))


def _gray_convention(kinds: list, keys: list[int]) -> str:
    if None in kinds:
        shown = keys if len(keys) <= 12 else keys[:10] + ["…", keys[-1]]
        return (f"label image values {', '.join(map(str, shown))}"
                + (f" ({len(keys)} values)" if len(keys) > 12 else ""))
    return "binary " + " and ".join(kinds) if kinds else "binary (no foreground in any mask)"


def _distinct(arr: np.ndarray) -> tuple[list[int], list[int], np.ndarray]:
    """Sorted distinct integer values, their counts and the local index image (uint8, or
    uint16 beyond 256 values)."""
    if arr.dtype.kind in "ui" and arr.size and arr.min() >= 0 and arr.max() < 65536:
        counts = np.bincount(arr.ravel(), minlength=1)
        keys = np.flatnonzero(counts)
        lut = np.zeros(len(counts), dtype=_index_dtype(len(keys)))
        lut[keys] = np.arange(len(keys))
        return keys.tolist(), counts[keys].tolist(), lut[arr]
    keys, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    local = inverse.reshape(arr.shape).astype(_index_dtype(len(keys)))
    return keys.tolist(), counts.tolist(), local


def _index_dtype(n_keys: int):
    return np.uint8 if n_keys <= 256 else np.uint16


def _jpeg_like(arr: np.ndarray) -> bool:
    """An 8-bit mask with most pixels near 0 or 255: a lossy-compressed binary mask (JPEG is 8
    bits; a 16-bit mask of small values is labels)."""
    if arr.dtype != np.uint8:
        return False
    near = np.count_nonzero((arr <= 48) | (arr >= 207))
    return near >= 0.95 * arr.size


def class_indices(values: np.ndarray, class_keys: list, n_classes: int, instances: bool,
                  volume: bool = False) -> np.ndarray:
    """Mask values as in the user's files (a label `volume`) -> class indices by the dataset's
    class keys (an (r, g, b) list for colours); a value no class has is foreground in a binary
    dataset, else background. Instance labels: any object is foreground."""
    values = np.asarray(values)
    if instances:
        return (values.any(axis=-1) if values.ndim == 3 and not volume else values != 0).astype(np.uint8)
    frame = analyse_mask(values, volume=volume)
    keys = [tuple(k) if isinstance(k, list) else k for k in class_keys]
    lut = np.zeros(len(frame.keys), np.uint8)
    for i, key in enumerate(frame.keys):
        probe = key if not isinstance(keys[0], tuple) or isinstance(key, tuple) else (key, key, key)
        if probe in keys:
            lut[i] = keys.index(probe)
        elif n_classes == 2 and probe not in (0, (0, 0, 0)):
            lut[i] = 1
    return lut[frame.local]
