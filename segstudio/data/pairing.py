"""Pairing images with masks by file stem, tolerating mask suffixes and other extensions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# "_mask", "-seg", "_Label", "_labels", "_GT"... at the end of a stem; Cellpose's "_masks" and
# "_cp_masks" too
MASK_SUFFIX = re.compile(r"[_-](cp_masks|masks?|seg|labels?|gt)$", re.IGNORECASE)
MASK_NAMES = "*_mask(s), *_cp_masks, *_seg, *_label(s) or *_gt"  # the names above, for messages


@dataclass
class Pairing:
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    unmatched_images: list[Path] = field(default_factory=list)
    unmatched_masks: list[Path] = field(default_factory=list)
    duplicates: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason), skipped


def pair_key(path: Path) -> str:
    """The matching key: case-folded stem without a mask suffix."""
    return MASK_SUFFIX.sub("", path.stem).casefold()


def is_mask_name(path: Path) -> bool:
    return MASK_SUFFIX.search(path.stem) is not None


def split_shared_folder(files: list[Path]) -> tuple[list[Path], list[Path]]:
    """(images, masks) of one folder holding both: masks are the files with a mask suffix."""
    return [p for p in files if not is_mask_name(p)], [p for p in files if is_mask_name(p)]


def pair_files(images: list[Path], masks: list[Path]) -> Pairing:
    """Match each image with the mask of the same key; a second file with a taken key is skipped."""
    out = Pairing()
    by_key: dict[str, Path] = {}
    for m in masks:
        key = pair_key(m)
        if key in by_key:
            out.duplicates.append((m, f"another mask for the same image: {by_key[key].name}"))
        else:
            by_key[key] = m
    seen: dict[str, Path] = {}
    for img in images:
        key = img.stem.casefold()
        if key in seen:
            out.duplicates.append((img, f"another image has the same name: {seen[key].name}"))
            continue
        seen[key] = img
        if key in by_key:
            out.pairs.append((img, by_key[key]))
        else:
            out.unmatched_images.append(img)
    out.unmatched_masks = [m for k, m in by_key.items() if k not in seen]
    return out
