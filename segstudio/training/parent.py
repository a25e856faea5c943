"""Continuing from a run: its best model as the starting point of a new run on the current
(corrected) data, prepared as the run prepared its images (its window, mask reading, input
geometry), with the checks that make that sound and learning rates for fine-tuning."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config import TrainConfig
from ..data import SegDataset
from ..errors import SegstudioError
from ..preprocess.continued import inherit_preprocessing, preprocessing_changes
from ..preprocess.plan import model_inputs
from ..runs import MODEL_FILE, MODEL_META

FINE_TUNE_EPOCHS = 4   # the default length of a continued run
FINE_TUNE_DIVISOR = 3  # a continued run's top LR is its parent's divided by this; the encoder's 10x lower


@dataclass
class Parent:
    run_dir: str
    meta: dict
    state: dict            # the best model's weights
    lrs: tuple[float, float]  # the parent's (lo, hi)
    continued: bool = False   # the parent was itself continued from a run
    changes: tuple[str, ...] = ()  # how this run prepares images unlike the parent (continued.preprocessing_changes)

    @property
    def stats(self) -> tuple[list[float], list[float]]:
        return list(self.meta["mean"]), list(self.meta["std"])


def load_parent(run_dir: str, config: TrainConfig, data: SegDataset) -> tuple[Parent, list[str]]:
    """The run to continue from and warnings; SegstudioError, saying what to change, when its
    model cannot start this run (another architecture, other classes or input channels)."""
    folder = Path(run_dir).expanduser()
    if not (folder / MODEL_FILE).is_file() or not (folder / MODEL_META).is_file():
        raise SegstudioError(f"Cannot continue from {folder}: it holds no trained model ({MODEL_FILE}).")
    meta = json.loads((folder / MODEL_META).read_text(encoding="utf-8"))
    if meta["arch"] != config.arch.value:
        raise SegstudioError(f"Cannot continue from {folder.name}: its model is a {meta['arch']} U-Net, this "
                             f"run a {config.arch.value} one. Choose {meta['arch']} to continue from it.")
    if meta["n_out"] != len(data.codes):
        raise SegstudioError(f"Cannot continue from {folder.name}: its model has {meta['n_out']} classes "
                             f"({', '.join(meta['codes'])}), the dataset {len(data.codes)} ({', '.join(data.codes)}).")
    n_in = model_inputs(data.n_channels, data.context)
    if meta["n_in"] != n_in:
        raise SegstudioError(f"Cannot continue from {folder.name}: its model takes {meta['n_in']} input "
                             f"channel(s), this dataset gives {n_in} (other channels or context).")
    warnings = []
    if list(meta["codes"]) != list(data.codes):
        warnings.append(f"The parent run named its classes {', '.join(meta['codes'][1:])}; this dataset "
                        f"{', '.join(data.codes[1:])}. Continuing with the classes in the same order.")
    state = torch.load(folder / MODEL_FILE, map_location="cpu", weights_only=True)
    parent_cfg = parent_config(folder)
    if parent_cfg is None:  # a model without its settings: nothing to compare with
        return Parent(str(folder.absolute()), meta, state, (1e-5, 1e-3)), warnings
    changes = tuple(preprocessing_changes(config, data, parent_cfg))
    if changes:
        warnings.append(f"This run prepares images unlike {folder.name}: {'; '.join(changes)}. Its model is "
                        "scored below on this run's inputs, so the score differs from its own review (the "
                        f"review's Parent Dice column shows {folder.name} on its own inputs).")
    return Parent(str(folder.absolute()), meta, state, parent_cfg.lrs(), bool(parent_cfg.init_from),
                  changes), warnings


def parent_config(run_dir: str | Path) -> TrainConfig | None:
    """The run's config.json (the settings as it used them), None when it has none readable."""
    try:
        return TrainConfig.load(Path(run_dir).expanduser() / "config.json")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fine_tune_config(config: TrainConfig, parent: Parent) -> TrainConfig:
    """The config with fine-tuning learning rates where the user set none: the parent's top
    rate divided by FINE_TUNE_DIVISOR, the encoder's ten times lower."""
    hi = config.lr_hi if config.lr_hi is not None else parent.lrs[1] / (1 if parent.continued else FINE_TUNE_DIVISOR)
    lo = config.lr_lo if config.lr_lo is not None else hi / 10
    return replace(config, lr_lo=lo, lr_hi=hi, init_from=parent.run_dir)


def continue_config(run_dir: str, base: TrainConfig | None = None) -> TrainConfig:
    """A config that continues from the run: its settings (or `base`'s, with the run's
    architecture, normalisation layers and input geometry: size, patch scale, slice axis and
    context; and its window, mask reading, class names and input mode where `base` leaves them
    to the data, see preprocess.continued.inherit_preprocessing), FINE_TUNE_EPOCHS, and fine-tuning learning rates
    stated explicitly: the run's top rate divided by FINE_TUNE_DIVISOR (a run that was itself
    continued keeps its rate, so a correct-and-continue loop does not keep lowering it), the
    encoder's ten times lower."""
    folder = Path(run_dir).expanduser().absolute()
    parent = parent_config(folder)
    if parent is None:
        raise SegstudioError(f"Cannot continue from {folder}: it is not a run folder (no readable config.json).")
    hi = parent.lrs()[1] / (1 if parent.init_from else FINE_TUNE_DIVISOR)  # rounds of a loop keep one rate
    config = inherit_preprocessing(base or parent, parent)
    data = replace(config.data, axis=parent.data.axis, context=parent.data.context)
    return replace(config, data=data, arch=parent.arch, size=parent.size, scale=parent.scale, norm=parent.norm,
                   init_from=str(folder), lr_lo=hi / 10, lr_hi=hi, epochs=FINE_TUNE_EPOCHS, run_name="")
