"""A continued run prepares its images as its parent did: the parent's decisions wherever the
user leaves a setting to the data ("auto"), and a list of how its inputs differ where the user
changed them."""

from __future__ import annotations

from dataclasses import replace

from ..config import DataConfig, InputMode, TrainConfig

# Data settings whose value leaves the decision to the data: a continued run takes its parent's
# decision instead (the CT window computed from the masks, the mask values read as classes or
# instances, the class names), so that correcting a mask does not change the model's inputs.
AS_DECIDED = {"window": "auto", "labels": "auto", "class_names": []}


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


def preprocessing_changes(config: TrainConfig, data, parent: TrainConfig) -> list[str]:
    """How this run's inputs (`config` as resolved, `data` the SegDataset as loaded) differ from the parent's
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
