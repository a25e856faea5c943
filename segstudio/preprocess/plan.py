"""The plan: every decision on how a run turns files into model input, made once and recorded.

A Plan is made when a run starts (make_plan: the config's "auto" settings as the dataset decided
them), written as the run's model.json (Plan.to_meta) and read back by prediction, export, the
review and continued runs (Plan.from_meta, old run folders included: model.json format 1 is the
format written today). Keys of a model.json that the plan does not know (the best epoch and its
Dice, the calibration temperature, a torchrun launch, an export's description) are kept as they
are through a read and a write.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import __version__
from ..config import TrainConfig
from ..errors import SegstudioError
from ..runs import MODEL_META
from .slicing import AXES, scaled_shape

FORMAT = 1  # model.json's format: still 1, whose readers ignore the keys added since (labels, class_keys)
PATCH_OVERLAP = 0.5  # the sliding window's overlap when a patch run predicts
KNOWN = {"format", "segstudio", "arch", "n_in", "n_out", "codes", "size", "mean", "std", "window", "pretrained",
         "channels", "norm", "head", "parent", "input", "volumes", "labels", "class_keys"}


def model_inputs(n_channels: int, context: int = 0) -> int:
    """The model's input channels: three for one grey channel (repeated, so ImageNet encoders
    fit), else every channel of every slice (2.5-D neighbours, multi-channel scans)."""
    n = n_channels * (2 * context + 1)
    return 3 if n == 1 else n


@dataclass
class Plan:
    """How a run's model takes its input; see the module's docstring."""

    codes: list[str]                  # class names, codes[0] is background
    size: int                         # training size (S x S), or the patch size of a patch run
    mean: list[float]                 # normalisation of the model's inputs in 0..1, per input channel
    std: list[float]
    arch: str = "resnet34"
    n_in: int = 3                     # the model's input channels (model_inputs)
    n_out: int = 0                    # classes (0: len(codes))
    window: str = "auto"              # the CT window ("W/L", computed for the dataset with "auto") or a mode
    pretrained: bool = False          # the encoder started from ImageNet (or the user's) weights
    norm: str = "batch"               # the U-Net's normalisation layers
    head: int = 0                     # its full-resolution head's channels (0: fastai's; older runs)
    channels: int | None = None       # image channels, 1 (grey) or 3 (colour); None: not recorded
    parent: str = ""                  # the run this one continued from
    input_mode: str = "resize"        # "resize": whole images to S x S; "patches": S x S windows of scaled images
    scale: float = 1.0                # patches: the images' scale
    overlap: float = PATCH_OVERLAP    # patches: the sliding window's overlap
    volumetric: bool = False          # trained on slices of 3-D scans
    axis: str = "axial"               # scans: the axis slices are taken across (AXES)
    context: int = 0                  # scans: neighbouring slices on each side as input channels
    scan_channels: int = 1            # scans: channels per slice (modalities)
    modalities: list[str] = field(default_factory=list)  # ["CT"]: every scan was read as CT
    labels: str = ""                  # mask values read as "classes" or "instances" ("": not recorded)
    class_keys: list = field(default_factory=list)  # the mask value of each class, an int or [r, g, b]
                                                    # ([]: not recorded)
    version: str = __version__        # the segstudio that made the plan
    extra: dict = field(default_factory=dict)  # model.json keys the plan does not hold, kept as they are

    def __post_init__(self):
        if not self.n_out:
            self.n_out = len(self.codes)

    @property
    def patches(self) -> dict | None:
        """A patch run's sliding-window settings (mode, patch, scale, overlap); None: resize."""
        if self.input_mode != "patches":
            return None
        return {"mode": "patches", "patch": self.size, "scale": self.scale, "overlap": self.overlap}

    @property
    def slice_axis(self) -> int:
        """The canonical axis slices of scans are taken across."""
        return AXES[self.axis]

    def image_shape(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """(h, w) a decoded (H, W, ...) frame is resampled to: S x S, or for patches its size x scale."""
        return scaled_shape(shape, self.scale) if self.input_mode == "patches" else (self.size, self.size)

    def to_meta(self) -> dict:
        """model.json: the plan, and the extra keys it was read with."""
        meta = {"format": FORMAT, "segstudio": self.version, "arch": self.arch, "n_in": self.n_in,
                "n_out": self.n_out, "codes": list(self.codes), "size": self.size, "mean": list(self.mean),
                "std": list(self.std), "window": self.window, "pretrained": self.pretrained}
        if self.channels is not None:  # grey (1) or colour (3) images: the predictor says when others come
            meta["channels"] = self.channels
        if self.norm != "batch":  # the predictor builds the same layers
            meta["norm"] = self.norm
        if self.head:  # the predictor builds the same head (model.unet.slim_head)
            meta["head"] = self.head
        if self.parent:
            meta["parent"] = self.parent
        if self.input_mode == "patches":  # the predictor cuts windows of the patch size at this scale
            meta["input"] = self.patches
        if self.volumetric:  # how scans were sliced and normalised, for predicting new scans
            meta["volumes"] = {"axis": self.axis, "context": self.context, "channels": self.scan_channels,
                               "modalities": list(self.modalities)}
        if self.labels:
            meta["labels"] = self.labels
        if self.class_keys:
            meta["class_keys"] = list(self.class_keys)
        return {**meta, **self.extra}

    @classmethod
    def from_meta(cls, meta: dict) -> "Plan":
        """The plan a model.json records (format 1, from any segstudio version so far); keys it
        does not know go to `extra`. SegstudioError for one it cannot read (a newer format, no
        classes or size)."""
        if int(meta.get("format", FORMAT)) > FORMAT:
            raise SegstudioError(f"The model's {MODEL_META} is format {meta['format']}, written by a newer "
                                 f"segstudio ({meta.get('segstudio', '?')}); this one reads format {FORMAT}. "
                                 "Update segstudio to use this model.")
        try:
            return cls._read(meta)
        except (KeyError, TypeError, ValueError) as e:
            raise SegstudioError(f"The model's {MODEL_META} cannot be read: {type(e).__name__} {e}") from e

    @classmethod
    def _read(cls, meta: dict) -> "Plan":
        settings = meta.get("input") or {}
        scans = meta.get("volumes")
        n_in = int(meta.get("n_in", 3))
        plan = cls(codes=list(meta["codes"]), size=int(meta["size"]),
                   mean=list(meta.get("mean", [0.0] * n_in)), std=list(meta.get("std", [1.0] * n_in)),
                   arch=str(meta.get("arch", "resnet34")), n_in=n_in, n_out=int(meta.get("n_out", 0)),
                   window=str(meta.get("window", "auto")), pretrained=bool(meta.get("pretrained", False)),
                   norm=str(meta.get("norm", "batch")), head=int(meta.get("head", 0)),
                   channels=int(meta["channels"]) if meta.get("channels") is not None else None,
                   parent=str(meta.get("parent", "") or ""), labels=str(meta.get("labels", "") or ""),
                   class_keys=list(meta.get("class_keys", [])),
                   version=str(meta.get("segstudio", "")),
                   extra={k: v for k, v in meta.items() if k not in KNOWN})
        if settings.get("mode") == "patches":
            plan.input_mode = "patches"
            plan.scale, plan.overlap = float(settings.get("scale", 1.0)), float(settings.get("overlap", PATCH_OVERLAP))
            plan.size = int(settings.get("patch", plan.size))
        if scans is not None:
            plan.volumetric = True
            plan.axis, plan.context = str(scans.get("axis", "axial")), int(scans.get("context", 0))
            plan.scan_channels = int(scans.get("channels", 1))
            plan.modalities = list(scans.get("modalities", []))
        return plan

    def with_extra(self, **values) -> "Plan":
        """The plan with model.json keys it does not decide (epoch, dice_mean...) set."""
        return replace(self, extra={**self.extra, **values})


def make_plan(config: TrainConfig, data, *, pretrained: bool, norm: str,
              stats: tuple[list[float], list[float]], head: int) -> Plan:
    """The plan of a run on `data` (a loaded SegDataset: the window, mask reading, classes and
    input it decided), with the learner's decisions: encoder weights, norm layers, head, statistics.
    Scans: modalities ["CT"] when every scan was read as CT, so new scans get the run's HU
    window; otherwise nothing is assumed and each new scan is judged by its own values
    (recipe.is_ct)."""
    mean, std = stats
    patches = data.native is not None
    modalities = ["CT"] if data.volumetric and {v.modality for v in data.volumes} == {"CT"} else []
    return Plan(codes=list(data.codes), size=int(data.size), mean=list(mean), std=list(std), arch=config.arch.value,
                n_in=model_inputs(data.n_channels, data.context), window=data.window, pretrained=bool(pretrained),
                norm=norm, head=head, channels=data.n_channels, parent=config.init_from,
                input_mode="patches" if patches else "resize", scale=data.native.scale if patches else 1.0,
                volumetric=bool(data.volumetric), axis=config.data.axis if data.volumetric else "axial",
                context=int(data.context), scan_channels=data.n_channels if data.volumetric else 1,
                modalities=modalities, labels=data.labels, class_keys=list(data.class_keys))
