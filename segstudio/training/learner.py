"""Building the fastai U-Net learner for a config: encoder weights, normalisation, loss, precision."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field

import torch
from fastai.callback.fp16 import MixedPrecision  # noqa: F401  (patches to_fp16/to_bf16 onto Learner)
from fastai.callback.progress import ProgressCallback
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches fit_one_cycle/lr_find)
from fastai.learner import Learner
from fastai.torch_core import set_seed
from fastai.vision.learner import unet_learner
from fastcore.basics import noop

from ..config import Norm, Schedule, TrainConfig
from ..data import SegDataset
from ..model.norms import to_instance_norm
from ..model.unet import HEAD_WIDTH, slim_head
from ..model.weights import arch_from_file, architecture, cached_weights_file, pretrained_available
from ..preprocess.plan import model_inputs
from .events import GroupInfo
from .groups import group_names
from .loaders import IMAGENET_STATS, auto_batch_size, build_dataloaders, dataset_stats
from .losses import make_loss
from .metrics import PerClassDice, VolumeDice
from .deep_supervision import PREFIX as HEADS, DeepSupervision, with_heads
from .schedules import FUSED_DEVICES, fused_adamw, sgd_nesterov


MIN_INSTANCE_SIZE = 64  # a 2 x 2 bottleneck: instance norm cannot normalise a single pixel


@dataclass
class BuiltLearner:
    learn: Learner
    dice: PerClassDice | VolumeDice
    pretrained: bool  # the encoder really starts from ImageNet (or the user's) weights
    stats: tuple[list[float], list[float]]
    mixed_precision: bool
    norm: str = Norm.batch.value  # the U-Net's normalisation layers (a continued run keeps its parent's)
    head: int = 0  # the full-resolution head's channels (model.unet.slim_head; a continued run keeps its parent's)
    warnings: list[str] = field(default_factory=list)
    bs: int = 8  # the batch size: the config's, or the automatic one


def resolve_encoder(config: TrainConfig, warnings: list[str]):
    """(torchvision constructor, pretrained?) for the config, without any network access."""
    arch = config.arch.value
    if not config.pretrained:
        return architecture(arch), False
    if config.weights_path:
        return arch_from_file(arch, config.weights_path), True
    if pretrained_available(arch):
        return architecture(arch), True
    warnings.append(
        f"Pretrained {arch} weights are not in the local torch cache ({cached_weights_file(arch)}) and "
        "cannot be downloaded offline: training from a random encoder, with learning rates for a "
        "random encoder. Put the weights file there, or choose one with 'weights file', to use them.")
    return architecture(arch), False


def build_learner(config: TrainConfig, data: SegDataset, device: torch.device,
                  path: str | None = None, parent=None) -> BuiltLearner:
    """A unet_learner on the cached data, on `device`, with no progress bar or logger; with a
    `parent` (training.parent.Parent) it starts from that run's model and normalisation."""
    warnings: list[str] = []
    set_seed(config.seed)
    if parent is not None:
        arch_fn, pretrained = architecture(config.arch.value), False
    else:
        arch_fn, pretrained = resolve_encoder(config, warnings)
    n_in = model_inputs(data.n_channels, data.context)
    stats = (parent.stats if parent is not None else
             IMAGENET_STATS if pretrained and n_in == 3 else dataset_stats(data))
    bs = config.bs or auto_batch_size(data)
    dls = build_dataloaders(data, bs, device, augment=config.augment, stats=stats, seed=config.seed,
                            empty_share=config.empty_share)
    if dls.train.bs < config.bs:
        warnings.append(f"Batch size {config.bs} is more than the {len(data.train_idx)} training images: "
                        f"using batches of {dls.train.bs}.")
    dice = (VolumeDice(len(data.codes), data.item_volume[data.valid_idx]) if data.volumetric
            else PerClassDice(len(data.codes)))
    extra = ({"opt_func": sgd_nesterov} if config.schedule == Schedule.poly else
             {"opt_func": fused_adamw} if device.type in FUSED_DEVICES else {})
    learn = unet_learner(dls, arch_fn, normalize=False, n_out=len(data.codes), pretrained=pretrained,
                         loss_func=make_loss(config.loss), metrics=[dice], n_in=n_in,
                         path=path or tempfile.mkdtemp(prefix="segstudio-"), **extra)
    learn.remove_cb(ProgressCallback)
    learn.logger = noop
    head = int(parent.meta.get("head", 0)) if parent is not None else HEAD_WIDTH
    slim_head(learn.model, head)
    if parent is not None:
        norm = parent.meta.get("norm", Norm.batch.value)
    else:
        norm = resolve_norm(config.norm, pretrained, config.size, warnings)
    if norm == Norm.instance.value:
        to_instance_norm(learn.model)
    if config.deep_supervision:
        learn.loss_func = DeepSupervision(learn.model, len(data.codes)).loss(learn.loss_func)
        learn.splitter = with_heads(learn.splitter)
    if parent is not None:  # recorded as the first run of the chain started (ImageNet or random)
        # a saved model has no training-only heads (fresh ones are kept); a checkpoint has them
        state = {k: v for k, v in learn.model.state_dict().items() if k.startswith(HEADS)}
        learn.model.load_state_dict({**state, **parent.state})
        pretrained = bool(parent.meta.get("pretrained", False))
    if learn.opt is not None:  # unet_learner froze a pretrained encoder, which built the optimiser before the
        learn.opt = None       # layers replaced above (head, norms, deep-supervision heads): build it again
        learn.freeze()
    learn.model.to(device)
    mixed = config.precision.value == "on" or (config.precision.value == "auto" and device.type == "cuda")
    if mixed and device.type != "cuda":
        warnings.append("Mixed precision needs a CUDA GPU; training in full precision.")
        mixed = False
    if mixed:
        learn.to_bf16() if torch.cuda.is_bf16_supported() else learn.to_fp16()
    if not pretrained and parent is None and config.lr_lo is not None and config.lr_hi is not None and config.lr_lo < config.lr_hi / 10:
        warnings.append(f"The encoder is randomly initialised, but its learning rate ({config.lr_lo:.0e}) is far "
                        f"below the decoder's ({config.lr_hi:.0e}): tiny encoder rates suit pretrained "
                        "encoders only and may leave the model barely trained.")
    return BuiltLearner(learn, dice, pretrained, stats, mixed, norm, head, warnings, bs)


def resolve_norm(norm: Norm, pretrained: bool, size: int, warnings: list[str]) -> str:
    """"auto": BatchNorm where the encoder's ImageNet weights (trained with it) are used, else
    instance norm, which trained faster and better from scratch in bench_recipe.py. Instance
    norm needs more than one pixel in the encoder's deepest features (1/32 of the size)."""
    if norm == Norm.auto:
        return Norm.batch.value if pretrained or size < MIN_INSTANCE_SIZE else Norm.instance.value
    if norm == Norm.instance and size < MIN_INSTANCE_SIZE:
        warnings.append(f"Instance norm needs images of at least {MIN_INSTANCE_SIZE} px (the encoder's deepest "
                        f"features are 1/32 of the size): training {size} px images with BatchNorm.")
        return Norm.batch.value
    return norm.value


def group_info(learn: Learner, lrs: list[float], arch: str) -> tuple[GroupInfo, ...]:
    """Parameter groups with their size, planned LR and frozen state."""
    if learn.opt is None:
        learn.create_opt()
    frozen_idx = learn.opt.frozen_idx
    return tuple(GroupInfo(name=name, n_params=sum(p.numel() for p in params), lr=float(lr), frozen=i < frozen_idx)
                 for i, (name, params, lr) in enumerate(zip(group_names(arch), learn.opt.param_lists, lrs)))
