"""What a failed run tells the user: a Failed event with the reason and what to do (out of
memory, a full or unwritable disk, the user's errors), and the traceback in the run's error.log."""

from __future__ import annotations

import errno
import logging
import traceback
from pathlib import Path

from ..errors import SegstudioError
from ..files import unwritable_reason, write_atomic
from ..runs import CHECKPOINT
from . import events as ev

log = logging.getLogger(__name__)


def failure_event(exc: BaseException, run_dir: Path | None) -> ev.Failed:
    """A readable Failed event for an exception, with advice for the common causes."""
    text = f"{type(exc).__name__}: {exc}"
    if run_dir is not None:
        try:
            write_atomic(run_dir / "error.log", "".join(traceback.format_exception(exc)))
        except OSError:
            pass
    log.debug("training failed: %s", text)  # the Failed event carries it to the user, once
    if "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError":
        _release_device_memory()
        return ev.Failed("The device ran out of memory.", advice=(
            "Lower the batch size or the image size, or pick a smaller architecture (resnet18)."),
            run_dir=str(run_dir or ""))
    if isinstance(exc, OSError) and exc.errno in DISK_FULL + UNWRITABLE:
        return ev.Failed(write_failure(exc), advice=resume_advice(exc, run_dir), run_dir=str(run_dir or ""))
    if isinstance(exc, SegstudioError):
        return ev.Failed(str(exc), run_dir=str(run_dir or ""))
    if isinstance(exc, KeyboardInterrupt):
        return ev.Failed("Interrupted.", run_dir=str(run_dir or ""))
    return ev.Failed(text, advice="See error.log in the run folder for details." if run_dir else "",
                     run_dir=str(run_dir or ""))


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_failure(exc: OSError) -> str:
    """What went wrong when a run's file could not be written (every write is atomic, so the
    previous checkpoint and best model are whole)."""
    where = f" ({exc.filename})" if exc.filename else ""
    return f"A run file cannot be written{where}: {unwritable_reason(exc)}"


def resume_advice(exc: OSError, run_dir: Path | None) -> str:
    """What to do after `exc` stopped a run from writing its files: free space (a full disk) or
    fix the permissions (an unwritable folder), then start again or resume."""
    fix = ("free some space" if exc.errno in DISK_FULL else
           "make the folder writable (its permissions, or a read-only disk)")
    if run_dir is None or not (run_dir / CHECKPOINT).is_file():
        return f"Choose another runs folder, or {fix}; then start the run again."
    return (f"The last complete checkpoint and the best model in {run_dir} are kept: {fix}, then resume the run "
            f"(File > Resume run…, or segstudio train --resume {run_dir}).")


def _release_device_memory() -> None:
    """Give cached GPU memory back after an out-of-memory error, so the next try can fit."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif torch.backends.mps.is_available():
        torch.mps.empty_cache()
