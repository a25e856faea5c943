"""The per-epoch checkpoint of a run: everything needed to continue it exactly where it stopped
(model, optimizer, epochs done, metrics so far, best epoch, every random generator's state).

Written atomically (a temporary file and a rename) after every epoch, so a run killed at any
moment, even during the write, leaves the last complete checkpoint; only that one is kept, next
to the best model (model.pth) the predictor loads. A run that finishes removes it (unless
TrainConfig.keep_checkpoint): a finished run is continued from its best model, not resumed.

The write happens in a background thread (CheckpointWriter), not between two epochs: the
training thread only copies the state (a memory copy, ~0.1 s for resnet18's 373 MB where
serialising and writing it took 1-1.4 s, benchmarks/README: bench_time_to_dice.py), and the
next epoch trains while the file is written. A thread rather than "every N epochs / T seconds":
every finished epoch still reaches the disk, so a SIGKILL loses at most the epoch in progress
(plus the one being written), whatever the epoch's length; when epochs are shorter than a write
(small data on a GPU), the writes coalesce instead of queueing: the newest state waits for the
write in flight and replaces any older one waiting, so at most two copies are held.
"""

from __future__ import annotations

import io
import random
import threading
from pathlib import Path

import numpy as np
import torch

from ..errors import SegstudioError
from ..files import write_atomic
from ..runs import CHECKPOINT
from .distributed import unwrap
from .event_log import finished_event

FORMAT = 1


def rng_state(learn) -> dict:
    """The state of every generator a fit draws from (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                    cached),
             "torch": torch.get_rng_state(), "loader": learn.dls.train.rng.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(learn, state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    learn.dls.train.rng.setstate(_tuples(state["loader"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    """random's state is nested tuples; a round trip through torch.save may give lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _plain(value, tensor=lambda t: t):
    """fastai's optimizer state with its L lists as plain lists (weights_only loading); `tensor`
    is applied to each tensor (a copy, for a checkpoint written while training goes on)."""
    if isinstance(value, dict):
        return {k: _plain(v, tensor) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "L":
        return [_plain(v, tensor) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, torch.Tensor):
        return tensor(value)
    return value


def load_optimizer(learn, state: dict) -> bool:
    """The checkpoint's optimiser state in `learn`'s new optimiser; False when it is another
    optimiser's (fastai's Adam, saved before the CPU used torch's fused AdamW, or on MPS): the
    optimiser then starts afresh."""
    from fastai.optimizer import OptimWrapper
    from fastcore.foundation import L

    learn.create_opt()
    wrapped = "param_groups" in state  # a wrapped torch optimiser (AdamW, poly's SGD): torch's own format
    if wrapped != isinstance(learn.opt, OptimWrapper):
        return False
    if wrapped:
        learn.opt.load_state_dict(state)
    else:
        learn.opt.load_state_dict({"state": list(state["state"]), "hypers": L(state["hypers"])})
    return True


def checkpoint_state(learn, epochs_done: int, metrics: list[dict], best_dice: float, best_epoch: int,
                     extra: dict, rngs: list[dict] | None = None) -> dict:
    """A copy of everything a checkpoint holds, on the CPU, that training can no longer change.
    `rngs`: every rank's generators under torchrun (rank order); this process's otherwise."""
    rngs = rngs or [rng_state(learn)]
    payload = {"format": FORMAT, "epochs_done": int(epochs_done), "metrics": _plain(metrics),
               "best_dice": float(best_dice), "best_epoch": int(best_epoch), "extra": _plain(extra),
               "model": {k: _copy(v) for k, v in unwrap(learn.model).state_dict().items()},
               "opt": _plain(learn.opt.state_dict(), _copy), "rng": rngs[0]}
    if len(rngs) > 1:
        payload["rng_ranks"] = rngs
    return payload


def _copy(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().to("cpu", copy=True)


def write_checkpoint(run_dir: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_atomic(Path(run_dir) / CHECKPOINT, buf.getvalue())


class CheckpointWriter:
    """Writes checkpoints in a background thread, newest first: `submit` hands over a state and
    returns at once; a state still waiting when a newer one comes is dropped. `wait` returns when
    everything handed over is on disk, and raises the first write's error (e.g. a full disk),
    which also stops further writes: the last complete checkpoint stays as it was."""

    def __init__(self):
        self._lock = threading.Condition()
        self._pending: tuple[Path, dict] | None = None
        self._busy = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def submit(self, run_dir: Path, payload: dict) -> None:
        with self._lock:
            self._raise()
            self._pending = (Path(run_dir), payload)
            if self._thread is None:
                # not a daemon: a write in progress completes before the process exits (a daemon
                # thread frozen inside torch.save at exit aborted the process on Ctrl-C)
                self._thread = threading.Thread(target=self._work, name="segstudio-checkpoint")
                self._thread.start()
            self._lock.notify_all()

    def wait(self, raise_error: bool = True) -> None:
        with self._lock:
            while (self._pending is not None or self._busy) and self._error is None:
                self._lock.wait()
            if raise_error:
                self._raise()

    def _raise(self) -> None:
        if self._error is not None:  # kept: every later submit or wait says it again
            raise self._error

    def _work(self) -> None:
        while True:
            with self._lock:
                if self._pending is None:  # nothing left: the thread ends (the next submit starts one)
                    self._thread = None
                    return
                (run_dir, payload), self._pending, self._busy = self._pending, None, True
            try:
                write_checkpoint(run_dir, payload)
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                with self._lock:
                    self._error, self._busy, self._pending, self._thread = exc, False, None, None
                    self._lock.notify_all()
                return
            with self._lock:
                self._busy = False
                self._lock.notify_all()


def load_checkpoint(run_dir: str | Path) -> dict:
    """The run's checkpoint; SegstudioError saying why when there is none to resume from."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        finished = finished_event(run_dir)
        if finished is not None:
            raise SegstudioError(f"{Path(run_dir).name} finished all {finished.epochs_done} epoch(s): there is nothing "
                                 f"to resume (its {CHECKPOINT} was removed when it finished; --keep-checkpoint keeps "
                                 "it). To train it further, continue from its best model: Continue training in the "
                                 f"app, or segstudio train --init-from {run_dir}.")
        raise SegstudioError(f"{Path(run_dir).name} has no checkpoint to resume from ({CHECKPOINT} is written "
                             "after each finished epoch; runs from before segstudio saved one cannot resume).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one message
        raise SegstudioError(f"The checkpoint of {Path(run_dir).name} cannot be read ({type(e).__name__}): "
                             "start the run again, or continue from its best model (--init-from).") from e
    if payload.get("format") != FORMAT:
        raise SegstudioError(f"The checkpoint of {Path(run_dir).name} has an unknown format")
    return payload
