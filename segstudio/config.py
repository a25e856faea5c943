"""Configuration dataclasses shared by the engine, the CLI and the GUI (JSON round-trip)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any


class Arch(str, Enum):
    resnet18 = "resnet18"
    resnet34 = "resnet34"
    resnet50 = "resnet50"


class Schedule(str, Enum):
    one_cycle = "one_cycle"  # unfreeze, fit_one_cycle(slice(lr_lo, lr_hi))
    fine_tune = "fine_tune"  # frozen epochs first, then unfrozen discriminative epochs
    poly = "poly"  # nnU-Net's: SGD (Nesterov, momentum 0.99), learning rate falling as (1 - t)^0.9


class Loss(str, Enum):
    ce = "ce"
    dice = "dice"
    ce_dice = "ce_dice"


class Device(str, Enum):
    auto = "auto"
    cuda = "cuda"
    mps = "mps"
    cpu = "cpu"


class InputMode(str, Enum):
    auto = "auto"  # patches when the images are much larger than the training size, else resize
    resize = "resize"  # each whole image resized to size x size
    patches = "patches"  # random size x size crops at native resolution (times `scale`)


class Norm(str, Enum):
    auto = "auto"  # instance norm for a random encoder, BatchNorm for a pretrained one
    batch = "batch"  # fastai's BatchNorm (what pretrained encoders were trained with)
    instance = "instance"  # nnU-Net's: each image normalised on its own, whatever the batch


class Precision(str, Enum):
    auto = "auto"  # mixed precision on CUDA, full precision elsewhere
    on = "on"
    off = "off"


# Learning-rate defaults. A pretrained encoder wants small early-layer rates; a random one does not:
# measured on nuclei tiles, slice(1e-5, 1e-3) on a random encoder reached Dice 0.21, a flat 3e-3 0.89.
PRETRAINED_LRS = (1e-5, 1e-3)
RANDOM_INIT_LRS = (3e-3, 3e-3)
# SGD takes larger steps than Adam: nnU-Net's 1e-2, spread down to the encoder when pretrained.
POLY_PRETRAINED_LRS = (1e-4, 1e-2)
POLY_RANDOM_INIT_LRS = (1e-2, 1e-2)


def default_lrs(pretrained: bool, schedule: Schedule = Schedule.one_cycle) -> tuple[float, float]:
    """The (lr_lo, lr_hi) a run uses when the user set none, for a pretrained or a random encoder."""
    if schedule == Schedule.poly:
        return POLY_PRETRAINED_LRS if pretrained else POLY_RANDOM_INIT_LRS
    return PRETRAINED_LRS if pretrained else RANDOM_INIT_LRS


@dataclass
class DataConfig:
    """Where the data is and how it is read."""

    images: str = ""
    masks: str = ""
    valid_pct: float = 0.2
    split_seed: int = 42
    # Cross-validation (`segstudio train --folds K`): with folds >= 2, fold `fold` of `folds`
    # validates (data/folds.py) instead of valid_pct; a fold set trains each fold in turn.
    folds: int = 0
    fold: int = 0
    # Cases (split groups) whose fold is fixed: a continued fold set keeps its parent's folds,
    # so that no fold validates on a case its parent fold trained on (data/folds.assign_folds).
    fold_of: dict[str, int] = field(default_factory=dict)
    # DICOM window: "auto" (CT: one HU window for the dataset from its foreground; other
    # modalities: the file's window, else percentiles), "file", "percentile", a preset name
    # (segstudio.preprocess.windowing.WINDOW_PRESETS) or "WIDTH/LEVEL", e.g. "400/40"; fixed windows are in HU
    # and apply to CT only.
    window: str = "auto"
    # Mask values: "auto" (instance labels are detected), "classes" (each value a class) or
    # "instances" (every non-zero value is foreground).
    labels: str = "auto"
    class_names: list[str] = field(default_factory=list)  # foreground class names, overriding
    # 3-D scans: the slices trained on ("axial", "coronal" or "sagittal"), and how many
    # neighbouring slices on each side join a slice as input channels (0: 2-D, 1: 2.5-D).
    axis: str = "axial"
    context: int = 0


# The built-in sample dataset's settings (CLI `train --demo`, the app's "Open sample dataset"):
# Dice about 0.96 in 8 epochs, about a minute on a 2-core CPU.
DEMO_SETTINGS = {"arch": Arch.resnet18, "size": 128, "epochs": 8, "bs": 4}
# The built-in sample of 3-D scans (`--demo-volumes`): 2.5-D slices of six phantom CT scans.
DEMO_VOLUME_SETTINGS = {"arch": Arch.resnet18, "size": 64, "epochs": 6, "bs": 8}
DEMO_VOLUME_CONTEXT = 1


@dataclass
class TrainConfig:
    """Everything a training run needs; saved in the run folder as config.json."""

    data: DataConfig = field(default_factory=DataConfig)
    arch: Arch = Arch.resnet18  # the one default of the CLI and the app
    pretrained: bool = True
    weights_path: str = ""  # optional local encoder weights file (torchvision state dict)
    size: int = 256
    bs: int = 0  # 0: auto (training.loaders.auto_batch_size: 2 to 8, by the dataset's size)
    epochs: int = 10
    lr_lo: float | None = None  # None: default_lrs(encoder is pretrained)
    lr_hi: float | None = None
    schedule: Schedule = Schedule.one_cycle
    freeze_epochs: int = 1  # fine_tune only
    loss: Loss = Loss.ce_dice  # Dice helps small structures; CE keeps early training stable
    augment: bool = True
    seed: int = 0
    device: Device = Device.auto
    precision: Precision = Precision.auto
    out_dir: str = ""  # runs folder; "" = the user data folder (platformdirs)
    run_name: str = ""
    preview_count: int = 4
    # Share of the training slices without any foreground drawn each epoch (the rest of the
    # epoch is the slices with foreground), so scans mostly made of background do not drown it.
    empty_share: float = 0.25
    # Continue from a run: its best model is the starting point (same architecture and classes);
    # recorded in config.json as the new run's parent.
    init_from: str = ""
    # How images reach the model: whole and resized, or as patches of the training size cut at
    # native resolution (after scaling by `scale`), predicted by sliding window.
    input_mode: InputMode = InputMode.auto
    scale: float = 1.0
    # nnU-Net's recipe pieces: the U-Net's normalisation layers, and deep supervision (extra
    # losses on the decoder's 1/2, 1/4 and 1/8 resolution outputs while training).
    # "auto": instance norm from a random encoder (benchmarks/README: bench_recipe.py).
    norm: Norm = Norm.auto
    deep_supervision: bool = False
    # A finished run's checkpoint.pth (model + optimizer, ~3x the model) is only needed to resume
    # an unfinished run; it is removed when the run finishes unless this is set.
    keep_checkpoint: bool = False
    # Seconds of wall time for the whole run (0: train `epochs` epochs): the epochs that fit are
    # measured on the first training steps and the schedule is sized to them (time_budget.py);
    # config.json then records the epochs chosen.
    time_budget: float = 0.0

    def lrs(self, encoder_pretrained: bool | None = None) -> tuple[float, float]:
        """The (lo, hi) range to train with, filling unset ends from the defaults."""
        lo_d, hi_d = default_lrs(self.pretrained if encoder_pretrained is None else encoder_pretrained,
                                  self.schedule)
        hi = self.lr_hi if self.lr_hi is not None else hi_d
        lo = self.lr_lo if self.lr_lo is not None else min(lo_d, hi)
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        data = DataConfig(**_known(DataConfig, d.pop("data", {}) or {}))
        kw = _known(cls, d)
        for name, enum in (("arch", Arch), ("schedule", Schedule), ("loss", Loss),
                           ("device", Device), ("precision", Precision), ("input_mode", InputMode),
                           ("norm", Norm)):
            if name in kw:
                kw[name] = enum(kw[name])
        return cls(data=data, **kw)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def _known(cls, d: dict[str, Any]) -> dict[str, Any]:
    """Keep only the keys `cls` has, so configs from other versions still load."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _plain(obj: Any) -> Any:
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
