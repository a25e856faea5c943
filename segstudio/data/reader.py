"""A file's frames with their names (the reading itself is io.registry's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io.registry import read_image
from ..preprocess.windowing import parse_window


def read_image_frames(path: str | Path, window: str = "auto") -> list[tuple[str, np.ndarray]]:
    """Any supported image -> [(name, uint8 (H, W) or (H, W, 3))], one entry per DICOM frame.

    Names are the file stem, plus "#<frame>" for multi-frame files. Raises DataError.
    """
    path = Path(path)
    spec = parse_window(window)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frames = read_image(path, spec).frames
    except DataError as e:
        raise DataError(f"{path.name}: {e}") from e
    return [(frame_name(path, i, len(frames)), f) for i, f in enumerate(frames)]


def frame_name(path: Path, frame: int, n_frames: int) -> str:
    return f"{path.stem}#{frame}" if n_frames > 1 else path.stem

