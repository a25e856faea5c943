"""Reading one mask file of any supported kind as labels to score: 2-D image masks (PNG, TIFF,
DICOM...), label volumes (NIfTI, NRRD, MetaImage; canonical orientation) and DICOM SEG; and
putting a pair of them on one voxel grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import dicom_seg
from ..io.registry import SCAN_READERS, read_image, read_scan, reader_for
from ..io.volume import LPS_RAS, Volume, canonical_volume, check_same_geometry

GRID_TOL = 1e-3  # voxels: how far apart two grids' voxels may lie and still be one grid


@dataclass
class Labels:
    """Integer labels (0 = background) of one file: (H, W) for an image mask, a canonical
    `volume` for scans and DICOM SEG."""
    array: np.ndarray | None = None        # 2-D image masks
    volume: Volume | None = None           # scans: canonical (Z, Y, X) labels and geometry
    names: dict[int, str] = field(default_factory=dict)  # DICOM SEG segment labels by value
    seg: bool = False                      # read from a DICOM SEG (which omits empty frames)


def read_labels(path: Path) -> Labels:
    """The labels in `path`; DataError with a one-line reason when it cannot be scored."""
    reader = reader_for(path)
    if reader in SCAN_READERS:
        volume = read_scan(path, mask=True)
        _check_values(volume.array)
        return Labels(volume=volume)
    if reader is dicom_seg:
        return _read_seg(path)
    frames = read_image(path, mask=True).frames
    if len(frames) != 1:
        raise DataError(f"mask has {len(frames)} frames; evaluate compares single-frame image masks")
    arr = frames[0]
    if arr.ndim != 2:
        raise DataError("colour mask; evaluate compares masks of class values (0, 1, 2...)")
    if arr.dtype.kind not in "iub":
        raise DataError(f"mask holds {arr.dtype} values, not integer labels")
    _check_values(arr)
    if arr.dtype == np.uint8 and arr.max(initial=0) == 255 and not np.isin(arr, (0, 255), invert=True).any():
        arr = (arr == 255).astype(np.uint8)  # a binary 0/255 mask: 255 is class 1
    return Labels(array=arr)


def on_one_grid(truth: Labels, pred: Labels) -> tuple[np.ndarray, np.ndarray, Volume | None]:
    """(truth labels, predicted labels, the volume whose spacing applies or None for image
    masks) on one grid; DataError saying why the two cannot be compared voxel by voxel."""
    if truth.volume is None and pred.volume is None:
        if truth.array.shape != pred.array.shape:
            raise DataError(f"prediction is {_size(pred.array.shape)} pixels but truth is "
                            f"{_size(truth.array.shape)}")
        return truth.array, pred.array, None
    if truth.volume is None or pred.volume is None:
        raise DataError("one of the pair is a 2-D image mask and the other a scan; cannot compare")
    t, p = truth.volume, pred.volume
    if truth.seg or pred.seg:  # SEG frames cover only the slices with segments
        a, b = _common_grid(t, p)
        return a, b, t
    if t.shape != p.shape:
        raise DataError(f"prediction is {_size(p.shape)} voxels but truth is {_size(t.shape)}")
    if (reason := check_same_geometry(t, p, what="prediction")) is not None:
        raise DataError(reason.replace("the image's", "the truth's"))
    return t.array, p.array, t


def _read_seg(path: Path) -> Labels:
    """A DICOM SEG's segments as labels (value = segment number) in its own frames' geometry."""
    mask = dicom_seg.read(path)
    try:
        vol = mask.seg.get_volume(combine_segments=True, skip_overlap_checks=True)
    except Exception as e:  # highdicom: frames not on a regular grid, or not in patient space
        raise DataError(f"cannot place the DICOM SEG's frames in space ({str(e).splitlines()[0]})") from e
    # highdicom's affine maps (frame, row, column) to LPS mm; canonical_volume wants RAS
    volume = canonical_volume(np.asarray(vol.array), LPS_RAS @ vol.affine, None, "", [str(path)],
                              "dicom-seg", True)
    return Labels(volume=volume, names=dict(mask.labels), seg=True)


def _common_grid(a: Volume, b: Volume) -> tuple[np.ndarray, np.ndarray]:
    """Both label volumes padded with background onto the box covering both, when b's voxels
    lie on a's grid (same orientation and spacing, whole-voxel offset)."""
    to_a = np.linalg.solve(a.affine, b.affine)  # b's (z, y, x) -> a's
    offset = np.round(to_a[:3, 3])
    if np.abs(to_a[:3, :3] - np.eye(3)).max() > GRID_TOL:
        raise DataError("prediction and truth have differently oriented or spaced voxel grids")
    if np.abs(to_a[:3, 3] - offset).max() > GRID_TOL:
        raise DataError("prediction's voxels are shifted against truth's by part of a voxel")
    offset = offset.astype(int)
    lo = np.minimum(0, offset)
    hi = np.maximum(a.shape, offset + np.asarray(b.shape))
    out = []
    for vol, start in ((a, -lo), (b, offset - lo)):
        grid = np.zeros(tuple(hi - lo), vol.array.dtype)
        grid[tuple(slice(s, s + n) for s, n in zip(start, vol.shape))] = vol.array
        out.append(grid)
    return out[0], out[1]


def _check_values(arr: np.ndarray) -> None:
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise DataError(f"negative label values (e.g. {int(arr.min())})")


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in reversed(shape))
