"""Reading, pairing, checking and caching image/mask datasets (no Qt, no fastai)."""

from .dataset import ProgressFn, SegDataset, StopFn, inspect_dataset, load_dataset
from .discovery import list_image_files
from .reader import read_image_frames, resize_image, resize_mask
from .report import ClassInfo, DatasetReport, Problem
from .sample import sample_dataset
from .series import group_series
from .windowing import WINDOW_PRESETS

__all__ = [
    "ClassInfo", "DatasetReport", "Problem", "ProgressFn", "SegDataset", "StopFn",
    "WINDOW_PRESETS", "group_series", "inspect_dataset", "list_image_files", "load_dataset", "read_image_frames",
    "resize_image", "resize_mask", "sample_dataset",
]
