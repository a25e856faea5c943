"""The corrections folder: masks a user corrected or drew in the review, saved beside the masks
folder (`<masks>-corrections/`) under the masks' own names and in their own convention.

The user's masks are never written: a corrected mask goes to this folder, and the loaders take it
in place of the original (`corrected_masks`). Each file has a provenance record (where it came
from, which run predicted it, when it was edited) in the folder's manifest, and unsaved edits are
kept in `.autosave/` after every stroke until they are saved or discarded.
"""

from __future__ import annotations

import glob
import io
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import DataError
from ..files import write_atomic
from ..runs import write_json
from ..io.registry import is_volume_file, volume_stem, write_label_like
from ..io.volume import Volume
from .discovery import IMAGE_EXTS
from .pairing import MASK_SUFFIX, pair_key

SUFFIX = "-corrections"
MANIFEST = ".segstudio-corrections.json"
AUTOSAVE = ".autosave"
LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}  # 2-D mask formats written as they are


def corrections_dir(masks_dir: str | Path) -> Path:
    """Where the corrections of the masks in `masks_dir` go: a sibling folder."""
    masks = Path(masks_dir).expanduser().absolute()
    return masks.parent / f"{masks.name}{SUFFIX}"


def corrected_masks(masks_dir: str | Path) -> dict[str, Path]:
    """The corrected masks of `masks_dir` by pairing key (see pairing.pair_key; a scan's by its
    stem): they replace the masks of the same images, or label images that had none."""
    folder = corrections_dir(masks_dir)
    if not folder.is_dir():
        return {}
    found = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if is_volume_file(p):
            found[volume_stem(p)] = p
        elif p.suffix.lower() in IMAGE_EXTS:
            found[pair_key(p)] = p
    return found


def correction_name(mask_file: str, image_file: str, like_suffix: str = ".png", case: str = "") -> str:
    """The corrected mask's file name. A scan's: its case name (cases of one dataset may share
    a label file name, e.g. KiTS's segmentation.nii.gz). A 2-D image's: the original mask's name,
    or for an image without one the image's stem (with "_mask" when the stem already ends like a
    mask's, so that it pairs with this image only), in the dataset's mask format (lossless: a
    JPEG mask is saved as PNG)."""
    if case:
        return f"{case}{like_suffix}"
    if mask_file and not is_volume_file(mask_file):
        p = Path(mask_file)
        return p.name if p.suffix.lower() in LOSSLESS else p.stem + ".png"
    stem = Path(image_file).stem
    suffix = like_suffix if like_suffix.lower() in LOSSLESS else ".png"
    return f"{stem}_mask{suffix}" if MASK_SUFFIX.search(stem) else stem + suffix


def _same(a: Path, b: Path) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def encode(classes: np.ndarray, keys: list, instances: bool = False) -> np.ndarray:
    """Class indices -> mask values in the dataset's convention: each class's value (`keys`, an
    (r, g, b) list for colour masks), or for instance labels one value per connected object."""
    classes = np.asarray(classes)
    if instances:
        labelled, n = ndimage.label(classes > 0)
        return labelled.astype(np.uint8 if n < 256 else np.uint16)
    lut = np.asarray(keys)
    if lut.ndim == 2:  # colours
        return lut.astype(np.uint8)[classes]
    return lut.astype(np.uint8 if lut.max(initial=0) < 256 else np.uint16)[classes]


def mask_bytes(values: np.ndarray, suffix: str, like: str | Path | None = None) -> bytes:
    """A 2-D mask file's bytes; a palette `like` mask passes its palette on."""
    image = Image.fromarray(values)
    if like is not None and values.ndim == 2 and values.dtype == np.uint8:
        try:
            with Image.open(like) as src:
                if src.mode == "P":
                    image.putpalette(src.getpalette())  # an "L" image becomes "P", values kept
        except OSError:
            pass
    buf = io.BytesIO()
    image.save(buf, format={".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}.get(suffix.lower(), "PNG"))
    return buf.getvalue()


class CorrectionsFolder:
    """The corrections folder of one masks folder (created on the first save)."""

    def __init__(self, masks_dir: str | Path):
        self.path = corrections_dir(masks_dir)

    def records(self) -> dict[str, dict]:
        """Provenance per corrected file name."""
        try:
            return json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))["files"]
        except (OSError, ValueError, KeyError):
            return {}

    def _target(self, name: str, protected: tuple) -> Path:
        """Where `name` goes; never onto a file of the user's (`protected`: their mask and masks folder)."""
        out = self.path / name
        for p in protected:
            if p and (_same(out, Path(p)) or _same(out.parent, Path(p))):
                raise DataError(f"refusing to write {out}: it is the user's own mask or masks folder")
        self.path.mkdir(parents=True, exist_ok=True)
        return out

    def save_mask(self, name: str, values: np.ndarray, provenance: dict, like: str | Path | None = None,
                  protected: tuple = ()) -> Path:
        """Write a 2-D mask (already encoded) atomically, and its provenance."""
        out = self._target(name, protected)
        write_atomic(out, mask_bytes(values, out.suffix, like))
        self._record(name, provenance)
        return out

    def save_volume(self, name: str, labels: np.ndarray, like: Volume, provenance: dict,
                    protected: tuple = ()) -> Path:
        """Write a canonical (Z, Y, X) label volume (encoded) in `like`'s geometry and format."""
        out = write_label_like(labels, like, self._target(name, protected))
        self._record(name, provenance)
        return out

    def _record(self, name: str, provenance: dict) -> None:
        records = self.records()
        records[name] = {**provenance, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json(self.path / MANIFEST, {"format": 1, "files": records})

    # -- unsaved edits -----------------------------------------------------------------------
    def _autosave_stem(self, key: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[-120:]

    def autosave(self, key: str, plane: int, labels: np.ndarray) -> None:
        """Keep one edited plane of an item until it is saved (atomic; about a millisecond for
        512 x 512, so it runs after every stroke)."""
        folder = self.path / AUTOSAVE
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, key=np.frombuffer(key.encode(), np.uint8), labels=labels)
        write_atomic(folder / f"{self._autosave_stem(key)}.{int(plane)}.npz", buf.getvalue())

    def recover(self, key: str) -> dict[int, np.ndarray]:
        """The unsaved planes of an item left by a crash (empty when there are none)."""
        planes = {}
        for path in (self.path / AUTOSAVE).glob(f"{glob.escape(self._autosave_stem(key))}.*.npz"):
            try:
                with np.load(path) as z:
                    if bytes(z["key"]).decode() == key:
                        planes[int(path.name.rsplit(".", 2)[1])] = z["labels"]
            except (OSError, ValueError, KeyError):
                continue
        return planes

    def discard_autosave(self, key: str) -> None:
        for path in (self.path / AUTOSAVE).glob(f"{glob.escape(self._autosave_stem(key))}.*.npz"):
            path.unlink(missing_ok=True)
