"""A review item's scan for the three-plane viewer, without Qt: the scan at full resolution in its
own units (HU for CT), its geometry, the prediction at full resolution, the labels to correct
(a ScanMask) and notes for the user about what could not be shown (a label of another geometry,
an oblique scan shown resampled). Runs in the task runner; bad input is a DataError or a note."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..preprocess.recipe import CT_AIR
from ..preprocess.windowing import WINDOW_PRESETS, percentile_window
from ..errors import Cancelled, DataError
from ..io.registry import read_geometry, read_scan
from ..io.volume import CANONICAL_AXES, Volume, check_same_geometry
from .scan_edit import ScanMask
from .store import MaskContext, _folder, _name, item_key
from .viewer_state import ScanGeometry

BYTES_PER_VOXEL = 7      # float32 values, and uint8 labels, prediction and ground truth
MEMORY_SHARE = 0.6       # a scan may take this share of the memory available
OBLIQUE_TOL = 1e-3       # direction cosines further than this from the axes: oblique


@dataclass
class ScanData:
    """What the viewer shows: `values` (Z, Y, X) in the scan's units, their `geometry`, the unit
    ("HU" or ""), a starting window (width, level), the prediction and ground truth (None when
    absent or not shown), the labels being corrected (`mask`; None: display only) and notes."""

    name: str
    values: np.ndarray
    geometry: ScanGeometry
    unit: str = ""
    window: tuple[float, float] = WINDOW_PRESETS["abdomen"]
    pred: np.ndarray | None = None
    truth: np.ndarray | None = None
    mask: ScanMask | None = None
    codes: tuple[str, ...] = ("background", "foreground")
    notes: list[str] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray | None:
        """The labels drawn as the ground truth: the corrected ones when editable."""
        return self.mask.labels if self.mask is not None else self.truth

    @classmethod
    def from_arrays(cls, name: str, values: np.ndarray, geometry: ScanGeometry, truth=None, pred=None,
                    codes=("background", "foreground"), key: str = "", unit: str | None = None) -> ScanData:
        """A scan given as arrays (a test, a benchmark, a memory-mapped file): editable labels
        start from the truth, else the prediction, else empty."""
        sample = values[::4, ::4, ::4]
        ct = unit == "HU" if unit is not None else float(sample.min()) <= CT_AIR
        window = WINDOW_PRESETS["abdomen"] if ct else percentile_window(np.asarray(sample, np.float32))
        start = truth if truth is not None else pred
        labels = np.array(start, np.uint8) if start is not None else np.zeros(geometry.shape, np.uint8)
        mask = ScanMask(key or name, name, np.zeros((0, 0, 0), np.uint8), labels, truth, pred,
                        axis=0, started_from="ground truth" if truth is not None else
                        "prediction" if pred is not None else "empty")
        return cls(name, values, geometry, "HU" if ct else "", window, pred, truth, mask, tuple(codes))


def available_memory() -> int:
    """Bytes of memory available (Linux: MemAvailable; elsewhere the free pages)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_fits(shape, name: str, available: int | None = None) -> None:
    """DataError when a scan of `shape` would not fit in memory, with its size."""
    need = int(np.prod(shape[-3:])) * BYTES_PER_VOXEL
    have = available_memory() if available is None else available
    if need > MEMORY_SHARE * have:
        raise DataError(f"{name} is too large to open here: {' x '.join(map(str, shape[-3:]))} voxels need "
                        f"about {need / 1e9:.1f} GB with its labels, and {have / 1e9:.1f} GB of memory is free")


def obliquity(affine: np.ndarray) -> float:
    """How far (degrees) the array axes are from the patient's axes (0 for a canonical scan)."""
    cosines = np.abs(affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0))
    return float(np.degrees(np.arccos(np.clip(cosines.max(axis=0).min(), -1, 1))))


def straightened(volume: Volume, *arrays, order: int = 1) -> tuple[ScanGeometry, list[np.ndarray]]:
    """An oblique scan resampled onto the patient's axes (same voxel size, the box covering it),
    for display only; `arrays` (labels) nearest-neighbour, the scan's values with `order`."""
    spacing = np.asarray(volume.spacing)
    out_affine = CANONICAL_AXES @ np.diag([*spacing, 1.0])
    corners = np.array([[*c, 1.0] for c in itertools.product(*((0, n - 1) for n in volume.shape))]).T
    world = (volume.affine @ corners)[:3]
    index = np.linalg.solve(out_affine[:3, :3], world)  # corners in the output grid, origin 0
    lo, hi = np.floor(index.min(axis=1)), np.ceil(index.max(axis=1))
    out_affine[:3, 3] = out_affine[:3, :3] @ lo
    shape = tuple(int(n) for n in hi - lo + 1)
    matrix = np.linalg.solve(volume.affine[:3, :3], out_affine[:3, :3])
    offset = np.linalg.solve(volume.affine[:3, :3], out_affine[:3, 3] - volume.affine[:3, 3])
    values = volume.array[0] if volume.array.ndim == 4 else volume.array
    out = [ndimage.affine_transform(values, matrix, offset, shape, order=order, cval=float(values.min()))]
    out += [None if a is None else ndimage.affine_transform(a, matrix, offset, shape, order=0) for a in arrays]
    return ScanGeometry.from_affine(shape, out_affine), out


def load_scan_data(item, ctx: MaskContext | None, predictor=None, *, progress, should_stop) -> ScanData:
    """The item's scan, prediction and labels at full resolution (for the task runner). The
    labels are its saved correction when there is one, else its mask, else the prediction."""
    from ..inference.volumes import predict_volume  # torch: only when a scan opens

    def step(n: int, text: str) -> None:
        if should_stop():
            raise Cancelled()
        progress(n, 4, text)

    source = item.source
    series = Path(source).is_dir()  # a series folder's "header" is the whole series: read it once
    if not series:
        step(0, "Reading the scan's header")
        check_fits(read_geometry(source).shape, item.name)
    step(1, "Reading the scan")
    volume = read_scan(source)
    if series:
        check_fits(volume.shape, item.name)
    values = volume.array[0] if volume.array.ndim == 4 else volume.array
    notes = [f"{item.name} has {volume.channels} channels: channel 1 is shown"] if volume.channels > 1 else []
    truth_file = _truth_file(item, ctx)
    truth = None
    if truth_file:
        step(2, "Reading the labels")
        label = read_scan(truth_file, mask=True)
        reason = check_same_geometry(volume, label)
        if reason is not None:
            notes.append(f"The label {Path(truth_file).name} is not shown and cannot be corrected: its {reason}.")
        else:
            truth = ctx.decode(label.array, volume=True) if ctx is not None else label.array.astype(np.uint8)
    pred = None
    if predictor is not None:
        step(3, "Predicting the scan at full resolution")
        pred = predict_volume(predictor, volume, should_stop)
    codes = tuple(ctx.codes) if ctx is not None else tuple(getattr(predictor, "codes", ()) or ("background",
                                                                                                 "foreground"))
    ct = volume.modality == "CT" or float(values[::4, ::4, ::4].min()) <= CT_AIR
    angle = obliquity(volume.affine)
    if angle > OBLIQUE_TOL:
        geometry, (values, truth, pred) = straightened(volume, truth, pred)
        notes.append(f"{item.name}'s axes are {angle:.1f}° off the patient's: shown resampled onto them for "
                     "display only (corrections are off; your files are unchanged).")
        editable = False
    else:
        geometry = ScanGeometry.from_volume(volume)
        editable = ctx is not None and bool(ctx.masks_dir) and not (truth_file and truth is None)
    data = ScanData.from_arrays(item.name, values, geometry, truth, pred, codes, item_key(item),
                                "HU" if ct else "")
    if not editable:
        data.mask = None
    else:
        data.mask.ctx, data.mask.mask_file, data.mask.source = ctx, item.mask_file, source
    data.notes = notes
    progress(4, 4, "")
    return data


def _truth_file(item, ctx: MaskContext | None) -> str:
    """The item's saved correction when there is one, else its mask file ("" for none)."""
    if ctx is not None and ctx.masks_dir:
        saved = _folder(ctx).path / _name(item, ctx, item.name)
        if saved.is_file():
            return str(saved)
    return item.mask_file or ""
