"""A disk-backed cache of training-size slices: memory-mapped arrays in the user cache folder.

Keyed by the files (path, size, modification time) and the settings that shaped the slices, so a
second load of the same data is a matter of opening two files, and a dataset larger than the
memory streams from disk while training (numpy's memmap reads them). A cache is built a few rows
at a time with plain file writes (RowFile), so building it takes no more memory than one scan.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 7  # part of every key: a new version never opens an older cache (7: the recipe rounds
# resized CT to whole HU before a fixed window too, preprocess/recipe.py)
KEEP = 8  # caches kept; the least recently used beyond this are deleted when a new one is made
RECORD = "record.json"


def cache_root() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("segstudio", appauthor=False) / "slices"


def cache_key(files: list[str | Path], settings: dict[str, Any]) -> str:
    """A key that changes when a file or a setting does."""
    stats = []
    for f in files:  # a folder (a DICOM series) stands for every file in it
        for path in (sorted(p for p in Path(f).rglob("*") if p.is_file()) if Path(f).is_dir() else [Path(f)]):
            try:
                st = os.stat(path)
                stats.append((str(path.absolute()), st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append((str(path), -1, -1))
    text = json.dumps({"version": VERSION, "files": stats, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class SliceCache:
    """images (N, C, S, S) uint8 and masks (N, S, S) uint8 as memory maps, plus a JSON record."""

    def __init__(self, folder: Path, images: np.ndarray, masks: np.ndarray, record: dict):
        self.folder, self.images, self.masks, self.record = folder, images, masks, record

    @classmethod
    def open(cls, key: str, root: Path | None = None) -> "SliceCache | None":
        """The complete cache for `key`, read-only, or None."""
        folder = (root or cache_root()) / key
        try:
            record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
            images = np.load(folder / "images.npy", mmap_mode="r")
            masks = np.load(folder / "masks.npy", mmap_mode="r")
        except (OSError, ValueError):
            return None
        os.utime(folder)  # recently used: kept longest
        return cls(folder, images, masks, record)

    @classmethod
    def create(cls, key: str, n: int, channels: int, size: int, root: Path | None = None) -> "CacheWriter":
        """Empty arrays to fill, in a folder that only `commit` makes visible to `open`."""
        root = root or cache_root()
        root.mkdir(parents=True, exist_ok=True)
        _prune(root)
        folder = root / f"{key}.partial-{os.getpid()}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return CacheWriter(folder, n, channels, size)


class RowFile:
    """An .npy array on disk written and read a few rows at a time with plain file I/O. Unlike a
    writable memory map, the rows pass through the page cache without being mapped into the
    process, so its memory does not grow with the array."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype):
        header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        self.offset = header.offset
        del header  # only the header and the file's size were wanted
        self.path, self.shape, self.dtype = path, shape, np.dtype(dtype)
        self.row = int(np.prod(shape[1:])) * self.dtype.itemsize
        self.file = open(path, "r+b")

    def write(self, i: int, rows: np.ndarray) -> None:
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        self.file.seek(self.offset + i * self.row)
        self.file.write(data.tobytes())

    def read(self, start: int, stop: int) -> np.ndarray:
        self.file.seek(self.offset + start * self.row)
        data = np.frombuffer(self.file.read((stop - start) * self.row), dtype=self.dtype)
        return data.reshape((stop - start, *self.shape[1:]))

    def close(self) -> None:
        self.file.close()


class CacheWriter:
    """The slices of a cache being built: rows written as they come, published by `commit`."""

    def __init__(self, folder: Path, n: int, channels: int, size: int):
        self.folder = folder
        self.images = RowFile(folder / "images.npy", (n, channels, size, size), np.uint8)
        self.masks = RowFile(folder / "masks.npy", (n, size, size), np.uint8)

    def commit(self, key: str, record: dict) -> SliceCache:
        """Write the record and publish the cache under `key` (atomic rename)."""
        for rows in (self.images, self.masks):
            rows.file.flush()
            rows.close()
        (self.folder / RECORD).write_text(json.dumps(record), encoding="utf-8")
        final = self.folder.parent / key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(self.folder, final)
        return SliceCache.open(key, final.parent)

    def discard(self) -> None:
        """Delete an unfinished cache (the load failed or was cancelled)."""
        self.images.close()
        self.masks.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _prune(root: Path) -> None:
    """Delete leftovers of interrupted builds and the least recently used caches beyond KEEP."""
    now = time.time()
    folders = [d for d in root.iterdir() if d.is_dir()]
    for d in folders:
        if ".partial-" in d.name and now - d.stat().st_mtime > 3600:
            shutil.rmtree(d, ignore_errors=True)
    done = sorted((d for d in folders if ".partial-" not in d.name), key=lambda d: d.stat().st_mtime)
    for d in done[:max(0, len(done) - KEEP + 1)]:
        shutil.rmtree(d, ignore_errors=True)
