"""Finding image files in a folder (their format told by io.sniff from their first bytes), and
which folders of a dataset root hold the images and the masks."""

from __future__ import annotations

from pathlib import Path

from ..io.sniff import DICOM_EXTS, RASTER_EXTS, sniff_format
from .pairing import is_mask_name, pair_key

IMAGE_EXTS = RASTER_EXTS | DICOM_EXTS
SKIP_NAMES = {"dicomdir"}
# files segstudio reads or writes beside the images, not worth a note when skipped
SIDECAR_NAMES = {"classes.txt", "codes.txt", "dataset.json", ".segstudio-predictions.json"}


def is_supported(path: Path) -> bool:
    """A visible file with a supported extension, or any other file with the DICOM preamble."""
    if path.name.startswith(".") or path.name.lower() in SKIP_NAMES or not path.is_file():
        return False
    if path.suffix.lower() in IMAGE_EXTS:
        return True
    try:  # DICOM files are often named by UID or number ("1.2.840...", "IM0001")
        return sniff_format(path) == "DICOM"
    except OSError:
        return False


def list_image_files(folder: str | Path) -> list[Path]:
    """Supported image files directly in `folder` (not recursive), sorted by name."""
    return sorted((p for p in Path(folder).iterdir() if is_supported(p)), key=lambda p: p.name)


def skipped_entries(folder: str | Path, listed: list[Path]) -> tuple[list[Path], list[Path]]:
    """(visible files not in `listed`, visible subfolders) of `folder`, sorted by name."""
    taken = set(listed)
    files, folders = [], []
    try:
        entries = sorted(Path(folder).iterdir(), key=lambda p: p.name)
    except OSError:
        return [], []
    for p in entries:
        if p.name.startswith(".") or p in taken or p.name.lower() in SKIP_NAMES | SIDECAR_NAMES:
            continue
        if p.is_dir():
            folders.append(p)
        elif p.is_file():
            files.append(p)
    return files, folders


# a dataset root's subfolders, by name (any case); the first name found of each kind is used
IMAGE_DIRS = ("images", "image", "imgs", "img")
MASK_DIRS = ("masks", "mask", "labels", "label", "gt")


def split_dataset_root(images: str | Path, masks: str | Path = "") -> tuple[str, str, str]:
    """(images folder, masks folder, note) to read when no masks folder is given: a folder
    without image files of its own holding `images/` and `masks/` (or the other names in
    IMAGE_DIRS and MASK_DIRS) gives those two, with a note saying so; a folder holding images
    and masks named like them (`x.png`, `x_masks.png`: Cellpose's habit) is its own masks
    folder. Anything else (a masks folder given, a 3-D layout, a missing folder) comes back as
    it was, with no note."""
    unchanged = (str(images or ""), str(masks or ""), "")
    if str(masks or "").strip() or not str(images or "").strip():
        return unchanged
    root = Path(images).expanduser()
    try:
        if not root.is_dir():
            return unchanged
        files = list_image_files(root)
        if files:
            keys = {p.stem.casefold() for p in files if not is_mask_name(p)}
            shared = any(is_mask_name(p) and pair_key(p) in keys for p in files)
            return (str(images), str(images), "") if shared else unchanged
        subs = {d.name.lower(): d for d in sorted(root.iterdir()) if d.is_dir()}
    except OSError:
        return unchanged
    image_dir = next((subs[n] for n in IMAGE_DIRS if n in subs), None)
    mask_dir = next((subs[n] for n in MASK_DIRS if n in subs), None)
    if image_dir is None or mask_dir is None:
        return unchanged
    return (str(image_dir), str(mask_dir),
            f"{root.name}/ holds {image_dir.name}/ and {mask_dir.name}/: read as the images and masks folders")
