"""The names a file's frames go by in datasets, reports and predictions (the reading itself is
io.registry's)."""

from __future__ import annotations

from pathlib import Path


def frame_name(path: Path, frame: int, n_frames: int) -> str:
    """The file stem, plus "#<frame>" for a frame of a multi-frame file."""
    return f"{path.stem}#{frame}" if n_frames > 1 else path.stem
