"""Where predictions go: an output folder in which segstudio never replaces a file it did not write.

A manifest (`.segstudio-predictions.json`) lists the files segstudio wrote there with their
SHA-256. An existing file is replaced only when the manifest lists it with its current hash: a
user's image, mask or hand-corrected prediction with the same name is left alone and reported.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import SegstudioError
from ..files import check_writable, write_atomic
from ..runs import write_json

MANIFEST = ".segstudio-predictions.json"
SAVE_EVERY = 50  # manifest saves while writing; a crash in between only leaves files alone later
PROBABILITIES = "probabilities"  # the key in NAME.npz, as nnU-Net writes them


def probabilities_npz(probs: np.ndarray) -> bytes:
    """NAME.npz as nnU-Net writes predicted probabilities: one float16 array under the key
    "probabilities", (K, H, W) for an image, (K, Z, Y, X) for a scan; compressed."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{PROBABILITIES: np.asarray(probs, dtype=np.float16)})
    return buf.getvalue()


def same_folder(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)) == Path(os.path.abspath(b))


def check_output_folder(out_dir: str | Path, inputs: Iterable[tuple[str, str | Path]]) -> Path:
    """`out_dir` as a Path, or SegstudioError when it is one of the `inputs` ((label, folder)
    pairs: the images being predicted, the dataset's image and mask folders)."""
    out = Path(out_dir).expanduser()
    for label, folder in inputs:
        if folder and str(folder).strip() and same_folder(out, Path(folder).expanduser()):
            raise SegstudioError(
                f"The output folder is the {label} folder ({out}); predictions are never written "
                f"into it. Choose another folder, e.g. {out.parent / (out.name + '-predictions')}.")
    return out


class PredictionFolder:
    """Writes prediction files into one folder, never over a file segstudio did not write."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SegstudioError(f"Cannot create the output folder {self.out_dir}: {e.strerror or e}") from e
        self._manifest_path = self.out_dir / MANIFEST
        self._hashes = self._load_manifest()
        self._written_now: dict[str, str] = {}  # file name -> the item it was written for
        self._claimed: dict[str, str] = {}  # file name -> the first item that wanted it
        self._unsaved = 0
        self.left_alone: list[tuple[str, str]] = []  # (file name, why): files that were there
        self.skipped: list[tuple[str, str]] = []  # (item, why): items whose output name was taken

    def _load_manifest(self) -> dict[str, str]:
        try:
            data = json.loads(self._manifest_path.read_text(encoding="utf-8"))
            files = data.get("files", {}) if isinstance(data, dict) else {}
            return {str(k): str(v) for k, v in files.items()}
        except (OSError, ValueError):
            return {}

    def write(self, name: str, data: bytes, item: str) -> bool:
        """Write `data` as `name` for `item` (the image it was predicted from); False, with the
        reason in `left_alone`, when a file that is not a previous prediction is in the way."""
        if not self._may_write(name, item):
            return False
        write_atomic(self.out_dir / name, data)
        self._record(name, hashlib.sha256(data).hexdigest(), item)
        return True

    def write_with(self, name: str, item: str, writer: Callable[[Path], object]) -> bool:
        """Like `write`, for a writer that needs a file name: `writer(path)` writes `name`
        atomically itself (e.g. io.registry.write_label_like)."""
        if not self._may_write(name, item):
            return False
        writer(self.out_dir / name)
        self._record(name, _sha256(self.out_dir / name), item)
        return True

    def _may_write(self, name: str, item: str) -> bool:
        path = self.out_dir / name
        first = self._claimed.setdefault(name, item)
        if first != item:
            first_done = "written" if name in self._written_now else "not written: a file was in the way"
            self.skipped.append((item, f"its output would be named {name}, like {first}'s ({first_done}); "
                                       "rename one of the two to predict both"))
            return False
        if path.exists() or path.is_symlink():
            why = self._why_not_ours(path)
            if why:
                self.left_alone.append((name, why))
                return False
        return True

    def _record(self, name: str, digest: str, item: str) -> None:
        self._hashes[name] = digest
        self._written_now[name] = item
        self._unsaved += 1
        if self._unsaved >= SAVE_EVERY:
            self.save()

    def _why_not_ours(self, path: Path) -> str:
        if path.is_symlink() or not path.is_file():
            return "exists and is not a file segstudio wrote"
        recorded = self._hashes.get(path.name)
        if recorded is None:
            return "exists and was not written by segstudio"
        if _sha256(path) != recorded:
            return "was changed after segstudio wrote it"
        return ""

    def save(self) -> None:
        """Record the files written so far (atomically); a folder nothing was written into gets
        no manifest either."""
        if self._written_now or self._manifest_path.exists():
            write_json(self._manifest_path, {"format": 1, "files": self._hashes})
        self._unsaved = 0


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
