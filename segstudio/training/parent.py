"""Continuing from a run: its best model as the starting point of a new run on the current
(corrected) data, prepared as the run prepared its images (its window, mask reading, input
geometry), with the checks that make that sound and learning rates for fine-tuning."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..config import DataConfig, InputMode, TrainConfig
from ..data import SegDataset
from ..errors import SegstudioError
from ..runs import MODEL_FILE, MODEL_META
from .learner import model_inputs

FINE_TUNE_EPOCHS = 4   # the default length of a continued run
FINE_TUNE_DIVISOR = 3  # a continued run's top LR is its parent's divided by this; the encoder's 10x lower
# Data settings whose value leaves the decision to the data: a continued run takes its parent's
# decision instead (the CT window computed from the masks, the mask values read as classes or
# instances, the class names), so that correcting a mask does not change the model's inputs.
AS_DECIDED = {"window": "auto", "labels": "auto", "class_names": []}


@dataclass
class Parent:
    run_dir: str
    meta: dict
    state: dict            # the best model's weights
    lrs: tuple[float, float]  # the parent's (lo, hi)
    continued: bool = False   # the parent was itself continued from a run
    changes: tuple[str, ...] = ()  # how this run prepares images unlike the parent (preprocessing_changes)

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
    if meta["n_in"] != model_inputs(data):
        raise SegstudioError(f"Cannot continue from {folder.name}: its model takes {meta['n_in']} input "
                             f"channel(s), this dataset gives {model_inputs(data)} (other channels or context).")
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


def inherit_preprocessing(config: TrainConfig, parent: TrainConfig) -> TrainConfig:
    """`config` with the parent's decisions where it leaves them to the data (AS_DECIDED, and the
    "auto" input mode): a continued run sees its inputs as its parent saw them."""
    data = replace(config.data, **{key: getattr(parent.data, key) for key, undecided in AS_DECIDED.items()
                                   if getattr(config.data, key) == undecided})
    mode = parent.input_mode if config.input_mode == InputMode.auto else config.input_mode
    return replace(config, data=data, input_mode=mode)


def parent_data(data: DataConfig, parent: TrainConfig) -> DataConfig:
    """The data settings `data` (folders, split) read as the parent run read its own: its
    window, mask reading and class names, so that its model is scored as its own review does."""
    return replace(data, **{key: getattr(parent.data, key) for key in AS_DECIDED})


def preprocessing_changes(config: TrainConfig, data: SegDataset, parent: TrainConfig) -> list[str]:
    """How this run's inputs (`config` as resolved, `data` as loaded) differ from the parent's
    recorded ones, as "window 400/40 (parent: 167.2/115)"; settings the parent did not record
    (older runs: "auto") are not compared."""
    mine = {"window": data.window, "mask values": data.labels, "size": str(config.size),
            "input": config.input_mode.value}
    theirs = {"window": parent.data.window, "mask values": parent.data.labels, "size": str(parent.size),
              "input": parent.input_mode.value}
    if config.input_mode == InputMode.patches:
        mine["scale"], theirs["scale"] = f"{config.scale:g}", f"{parent.scale:g}"
    if data.volumetric:
        mine.update({"slice axis": config.data.axis, "context": str(data.context)})
        theirs.update({"slice axis": parent.data.axis, "context": str(parent.data.context)})
    return [f"{name} {mine[name]} (parent: {value})" for name, value in theirs.items()
            if value != "auto" and mine[name] != value]


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
    to the data, see inherit_preprocessing), FINE_TUNE_EPOCHS, and fine-tuning learning rates
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
