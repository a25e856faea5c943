"""A fold set's models as one: the folds' class probabilities averaged (softmax, then mean; never
the logits, the mistake nnU-Net fixed in its ensembling in 2026).

A fold set is a folder with `folds.json` and one run folder per fold (`fold_0` ...). Its folds
share one recipe (window, size, slicing, classes): the fold-set trainer fixes an "auto" window
from the first fold for the others. Each fold keeps its own input normalisation and calibration
temperature, applied inside `FoldEnsemble`, so the ensemble takes inputs in 0..1 like one model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from ..data.folds import fold_run, read_fold_record
from ..errors import SegstudioError
from ..runs import MODEL_FILE, MODEL_META

# model.json keys a fold may have of its own (a continued fold set's folds: each its parent fold);
# every other key (the recipe) must agree
OWN_KEYS = {"mean", "std", "epoch", "dice_mean", "temperature", "segstudio", "pretrained", "arch", "norm", "head",
            "format", "calibration", "ensemble", "parent"}


def fold_runs(root: str | Path, allow_missing: bool = False) -> list[tuple[int, Path]]:
    """(fold, run folder) of each fold with a trained model; SegstudioError naming the folds
    without one unless `allow_missing` (at least one is always needed)."""
    record = read_fold_record(root)
    k = record["folds"]
    found, missing = [], []
    for fold in range(k):
        run = fold_run(root, record, fold)
        (found if (run / MODEL_FILE).is_file() and (run / MODEL_META).is_file() else missing).append((fold, run))
    if not found or (missing and not allow_missing):
        names = ", ".join(str(f) for f, _ in missing)
        raise SegstudioError(
            f"Fold(s) {names} of {root} have no trained model (a failed or unfinished fold). Train them "
            f"(segstudio train --resume {root}), or predict with the others (--allow-missing-folds)."
            if found else f"No fold of {root} has a trained model yet.")
    return found


def ensemble_meta(metas: list[dict], folds: list[int]) -> dict:
    """The ensemble's model.json: the shared recipe, inputs in 0..1 (each fold normalises its
    own), no temperature of its own. SegstudioError when the folds' recipes differ."""
    first = {k: v for k, v in metas[0].items() if k not in OWN_KEYS}
    for fold, meta in zip(folds[1:], metas[1:]):
        other = {k: v for k, v in meta.items() if k not in OWN_KEYS}
        if other != first:
            keys = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
            raise SegstudioError(f"Fold {fold} was trained with other settings than fold {folds[0]} "
                                 f"({', '.join(keys)}): its probabilities cannot be averaged with theirs.")
    n_in = int(metas[0]["n_in"])
    meta = {k: v for k, v in metas[0].items() if k not in ("epoch", "dice_mean", "temperature", "calibration",
                                                           "parent")}
    meta.update(mean=[0.0] * n_in, std=[1.0] * n_in,
                ensemble={"folds": folds, "archs": [m.get("arch") for m in metas]})
    return meta


class FoldEnsemble(nn.Module):
    """Inputs in 0..1 -> log of the folds' mean class probabilities (so that the predictor's
    softmax gives back exactly that mean); each fold with its own normalisation and temperature."""

    def __init__(self, models: list[nn.Module], metas: list[dict]):
        super().__init__()
        self.models = nn.ModuleList(models)
        for i, meta in enumerate(metas):
            self.register_buffer(f"mean_{i}", torch.tensor(meta["mean"], dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer(f"std_{i}", torch.tensor(meta["std"], dtype=torch.float32).view(1, -1, 1, 1))
        self.temperatures = [float(meta.get("temperature", 1.0) or 1.0) for meta in metas]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = sum(torch.softmax(logits, dim=1) for logits in self.member_logits(x))
        return torch.log((total / len(self.models)).clamp_min(1e-12))

    def member_logits(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """Each fold's logits over its temperature, in float32 (what its softmax takes), one at a time."""
        for i, model in enumerate(self.models):
            yield model((x - getattr(self, f"mean_{i}")) / getattr(self, f"std_{i}")).float() / self.temperatures[i]

    @torch.no_grad()
    def logit_scale(self, x: torch.Tensor) -> float:
        """The folds' largest |logit / temperature| on inputs `x` (see backends.FoldSetBackend)."""
        return max(float(logits.abs().max()) for logits in self.member_logits(x))
