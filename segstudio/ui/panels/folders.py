"""Recognise dropped folders: which holds images and which masks (by name, then by pixel values)."""

from __future__ import annotations

from pathlib import Path

IMAGE_NAMES = {"images", "image", "imgs", "img", "input", "inputs", "scans", "slices", "raw", "x",
               "imagestr"}
MASK_NAMES = {"masks", "mask", "labels", "label", "gt", "ground_truth", "groundtruth", "truth",
              "annotations", "annotation", "segmentations", "segmentation", "seg", "segs", "y",
              "targets", "target", "labelstr"}
MASK_HINTS = ("mask", "label", "seg", "gt", "annot", "truth")
RASTER = {".png", ".tif", ".tiff", ".bmp", ".gif", ".jpg", ".jpeg"}
DICOM = {".dcm", ".dicom", ".ima"}


def classify_folders(paths: list[str | Path]) -> tuple[str | None, str | None]:
    """(images_dir, masks_dir) for dropped paths; either may be None.

    One folder holding image and mask subfolders fills both; two folders are told apart by their
    names and then their pixel values; a single folder is a mask folder when it looks like one.
    Dropped files stand for the folder they are in.
    """
    dirs: list[Path] = []
    for p in paths:
        path = Path(p)
        path = path.parent if path.is_file() else path
        if path.is_dir() and path not in dirs:
            dirs.append(path)
    if not dirs:
        return None, None
    if len(dirs) == 1:
        pair = find_pair(dirs[0])
        if pair:
            return str(pair[0]), str(pair[1])
        return (None, str(dirs[0])) if mask_score(dirs[0]) > 0 else (str(dirs[0]), None)
    a, b = dirs[:2]
    if mask_score(a) > mask_score(b):
        a, b = b, a
    return str(a), str(b)


def find_pair(folder: Path) -> tuple[Path, Path] | None:
    """(images, masks) subfolders of `folder`, recognised by their names, or None."""
    subs = [d for d in sorted(folder.iterdir()) if d.is_dir()] if folder.is_dir() else []
    images = next((d for d in subs if d.name.lower() in IMAGE_NAMES), None)
    masks = next((d for d in subs if d.name.lower() in MASK_NAMES), None)
    if images is None and masks is not None:
        rest = [d for d in subs if d != masks]
        images = rest[0] if len(rest) == 1 else None
    return (images, masks) if images is not None and masks is not None else None


def mask_score(folder: Path) -> int:
    """> 0 when `folder` looks like masks: a mask-like name, or files with few distinct values."""
    name = folder.name.lower()
    if name in MASK_NAMES or any(h in name for h in MASK_HINTS):
        return 2
    if name in IMAGE_NAMES:
        return -2
    files = [f for f in sorted(folder.iterdir())[:200] if f.is_file()] if folder.is_dir() else []
    if any(f.suffix.lower() in DICOM for f in files):
        return -1
    sample = [f for f in files if f.suffix.lower() in RASTER][:3]
    if not sample:
        return 0
    votes = [_few_values(f) for f in sample]
    return 1 if votes and all(votes) else -1


def _few_values(path: Path, limit: int = 32) -> bool:
    try:
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            if im.mode in ("RGB", "RGBA") and im.getcolors(limit + 1) is None:
                return False
            a = np.asarray(im)
        if a.ndim == 3:
            a = a[..., :3].reshape(-1, a.shape[-1] if a.shape[-1] < 3 else 3)
            return len(np.unique(a, axis=0)) <= limit
        return len(np.unique(a)) <= limit
    except Exception:
        return False
