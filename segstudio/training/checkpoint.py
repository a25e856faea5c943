"""The per-epoch checkpoint of a run: everything needed to continue it exactly where it stopped
(model, optimizer, epochs done, metrics so far, best epoch, every random generator's state).

Written atomically (a temporary file and a rename) after every epoch, so a run killed at any
moment, even during the write, leaves the last complete checkpoint; only that one is kept, next
to the best model (model.pth) the predictor loads. A run that finishes removes it (unless
TrainConfig.keep_checkpoint): a finished run is continued from its best model, not resumed.
"""

from __future__ import annotations

import io
import random
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


def _plain(value):
    """fastai's optimizer state with its L lists as plain lists (weights_only loading)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "L":
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_optimizer(learn, state: dict) -> None:
    from fastcore.foundation import L

    learn.create_opt()
    if "param_groups" in state:  # a wrapped torch optimizer (Schedule.poly's SGD): torch's own format
        learn.opt.load_state_dict(state)
    else:
        learn.opt.load_state_dict({"state": list(state["state"]), "hypers": L(state["hypers"])})


def save_checkpoint(run_dir: Path, learn, epochs_done: int, metrics: list[dict], best_dice: float,
                    best_epoch: int, extra: dict, rngs: list[dict] | None = None) -> None:
    """`rngs`: every rank's generators under torchrun (rank order); this process's otherwise."""
    rngs = rngs or [rng_state(learn)]
    payload = {"format": FORMAT, "epochs_done": int(epochs_done), "metrics": _plain(metrics),
               "best_dice": float(best_dice), "best_epoch": int(best_epoch), "extra": _plain(extra),
               "model": {k: v.detach().cpu() for k, v in unwrap(learn.model).state_dict().items()},
               "opt": _plain(learn.opt.state_dict()), "rng": rngs[0]}
    if len(rngs) > 1:
        payload["rng_ranks"] = rngs
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_atomic(Path(run_dir) / CHECKPOINT, buf.getvalue())


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
