"""Atomic file writes: every file segstudio writes appears whole, with a plain file's mode, or not at all."""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import SegstudioError


def _file_mode() -> int:
    """The mode a plain open() would give a new file (mkstemp's are private, 0600)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary path in `path`'s folder (ending in `suffix`: writers such as ITK pick the format
    by the name), renamed to `path` with FILE_MODE when the block succeeds, removed when it fails."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def write_new(path: str | Path, data: bytes | str) -> bool:
    """Write `data` to `path` whole unless `path` exists: False then, and the file is left as it
    is (processes starting together, e.g. a Slurm array's tasks, make one such file once)."""
    path, data = Path(path), data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, FILE_MODE)
        os.link(tmp, path)  # fails when `path` exists; no reader sees it half written
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system (FAT, some shares): created exclusively
        try:
            with open(path, "xb") as f:
                f.write(data)
        except FileExistsError:
            return False
    finally:
        os.unlink(tmp)
    return True


class NotWritable(SegstudioError):
    """A folder no file can be written into (permission, read-only or full disk)."""


def check_writable(folder: str | Path, what: str = "output folder") -> Path:
    """`folder` as a Path, or NotWritable saying why no file can be written into it (or, when it
    does not exist yet, into the nearest existing folder above it, where it would be made): tried
    by writing and removing a temporary file, so permissions, read-only disks and full disks all
    show, for any user (root included)."""
    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise NotWritable(f"Cannot use the {what} {folder}: {existing} is a file, not a folder.")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".segstudio-write-test-")
        try:
            os.write(fd, b"\0")
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        where = "" if existing == folder else f" ({existing}, where it would be created)"
        raise NotWritable(f"Cannot write into the {what} {folder}{where}: {unwritable_reason(exc)}") from exc
    return folder


def unwritable_reason(exc: OSError) -> str:
    """Why a file could not be written, and what to do: permission, read-only disk or full disk."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied. Choose a folder you can write to, or ask its owner for write access."
    if exc.errno == errno.EROFS:
        return "it is on a read-only file system. Choose a folder on another disk."
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full (or your quota is used up). Free some space, or choose a folder on another disk."
    return f"{exc.strerror or exc}."
