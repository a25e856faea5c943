"""The loaded dataset: a cache of training-size slices, each item a (volume, slice) of a scan.

A 2-D image file (or one frame of a multi-frame file) is a one-slice volume; a NIfTI, NRRD or
MetaImage scan is a volume of many slices along the chosen axis. The cache holds every item's
image and mask at the training size, in memory (2-D) or memory-mapped from the user cache folder
(volumes), so training reads slices without decoding files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..preprocess.slicing import context_rows

if TYPE_CHECKING:
    from .native import NativeStore


@dataclass(frozen=True)
class VolumeRef:
    """One scan (or 2-D image) of the dataset and where its slices are in the cache."""

    name: str                         # case name: the file stem ("stem#frame" for a frame)
    sources: tuple[str, ...]          # image file(s): one per channel
    label: str                        # mask / label file
    group: str                        # split group: hashed PatientID, else the case
    first: int                        # index of its first slice in the cache
    n_slices: int
    shape: tuple[int, int, int]       # (Z, Y, X) as read (canonical for volumes; (1, H, W) in 2-D)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # mm, (dz, dy, dx); 1 when unknown
    orientation: str = ""             # the file's own axis codes ("RAS", "LPS"...); "" in 2-D
    frame: int = 0                    # 2-D: the frame of a multi-frame file
    modality: str = ""

    @property
    def items(self) -> range:
        return range(self.first, self.first + self.n_slices)

    def slice_shape(self, axis: int) -> tuple[int, int]:
        """(H, W) of one slice across canonical `axis`."""
        dims = [d for i, d in enumerate(self.shape) if i != axis]
        return int(dims[0]), int(dims[1])

    def voxel_ml(self) -> float:
        """One voxel's volume in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0


@dataclass
class SegDataset:
    """Every usable item, decoded once and resized to `size` x `size`."""

    images: np.ndarray        # (N, C, S, S) uint8; C == 1 when every image is grayscale, else 3
    masks: np.ndarray         # (N, S, S) uint8 class indices
    volumes: list[VolumeRef]
    codes: list[str]          # class names, codes[0] is background
    train_idx: np.ndarray     # int64 item indices
    valid_idx: np.ndarray     # int64, non-empty when N >= 2
    window: str               # the DICOM window used: DataConfig.window, or the "W/L" computed
                              # for the dataset's CT images with "auto"
    size: int
    volumetric: bool = False  # items are slices of 3-D scans (Dice per scan, in 3-D)
    axis: int = 0             # volumes: the canonical axis slices are taken across (slicing.AXES)
    context: int = 0          # 2.5-D: neighbouring slices on each side given as input channels
    labels: str = "classes"   # how mask values were read: "classes" or "instances" (foreground)
    item_volume: np.ndarray = field(default=None)  # (N,) int32: the volume of each item
    item_slice: np.ndarray = field(default=None)   # (N,) int32: its slice within that volume
    has_foreground: np.ndarray = field(default=None)  # (N,) bool: the item's mask has foreground
    class_keys: list = field(default_factory=list)  # the mask value of each class, as the user's
                                                    # masks hold it (corrections are written so)
    unlabelled: list[str] = field(default_factory=list)  # image files (or scans) without a mask
    masks_dir: str = ""       # the masks (labels) folder: corrections go beside it
    native: "NativeStore | None" = None  # 2-D images at native resolution, for patch training

    def __post_init__(self):
        if not self.class_keys:
            self.class_keys = list(range(len(self.codes)))
        if self.item_volume is None:
            self.item_volume = np.concatenate([np.full(v.n_slices, k, np.int32)
                                               for k, v in enumerate(self.volumes)] or [np.zeros(0, np.int32)])
            self.item_slice = np.concatenate([np.arange(v.n_slices, dtype=np.int32)
                                              for v in self.volumes] or [np.zeros(0, np.int32)])
        if self.has_foreground is None:
            self.has_foreground = np.concatenate(
                [self.masks[i:i + 1024].reshape(len(self.masks[i:i + 1024]), -1).any(axis=1)
                 for i in range(0, len(self.masks), 1024)] or [np.zeros(0, bool)])

    def __len__(self) -> int:
        return len(self.item_volume)

    @property
    def n_channels(self) -> int:
        return int(self.images.shape[1])

    # -- per item ----------------------------------------------------------------------------
    def name(self, i: int) -> str:
        v = self.volumes[self.item_volume[i]]
        return f"{v.name}:{int(self.item_slice[i])}" if self.volumetric else v.name

    @property
    def names(self) -> list[str]:
        return [self.name(i) for i in range(len(self))]

    @property
    def sources(self) -> list[str]:
        return [self.volumes[k].sources[0] for k in self.item_volume]

    @property
    def frames(self) -> list[int]:
        return [self.volumes[k].frame if not self.volumetric else int(s)
                for k, s in zip(self.item_volume, self.item_slice)]

    @property
    def groups(self) -> list[str]:
        return [self.volumes[k].group for k in self.item_volume]

    @property
    def orig_sizes(self) -> list[tuple[int, int]]:
        return [self.volumes[k].slice_shape(self.axis) for k in self.item_volume]

    def neighbours(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), 2 * context + 1) item indices of each item's slice and its neighbours in
        its volume, clamped at the volume's ends (2.5-D input)."""
        idx = np.asarray(idx, dtype=np.int64)
        first = np.array([self.volumes[k].first for k in self.item_volume[idx]], dtype=np.int64)
        last = first + np.array([self.volumes[k].n_slices for k in self.item_volume[idx]]) - 1
        return context_rows(idx, first, last, self.context)

    def valid_volumes(self) -> list[int]:
        """The volumes whose slices are in the validation set, in order."""
        return sorted({int(k) for k in self.item_volume[self.valid_idx]})

