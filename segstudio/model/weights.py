"""Pretrained encoder weights, offline: the local torch hub cache or a user's file, never a download."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision import models

_WEIGHTS = {
    "resnet18": models.ResNet18_Weights.DEFAULT,
    "resnet34": models.ResNet34_Weights.DEFAULT,
    "resnet50": models.ResNet50_Weights.DEFAULT,
}


def cache_dir() -> Path:
    """Where torchvision looks for downloaded weights ($TORCH_HOME/hub/checkpoints)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights_file(arch: str) -> Path:
    """The file torchvision would load the ImageNet weights of `arch` from."""
    arch = getattr(arch, "value", arch)
    return cache_dir() / Path(_WEIGHTS[arch].url).name


def pretrained_available(arch: str) -> bool:
    """True when the ImageNet weights of `arch` are in the local cache (no network needed)."""
    return cached_weights_file(arch).is_file()


def architecture(arch: str):
    """The torchvision constructor for `arch`."""
    return getattr(models, getattr(arch, "value", arch))


def arch_from_file(arch: str, path: str | Path):
    """A constructor for `arch` that loads a local torchvision state dict instead of downloading.

    It is registered in fastai's model_meta like the plain arch, so cut, groups, Normalize and
    freeze behave the same.
    """
    from fastai.vision.learner import model_meta

    base = architecture(arch)
    path = Path(path)

    def local_arch(weights=None, **kwargs):
        model = base(weights=None, **kwargs)
        if weights is not None:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model

    local_arch.__name__ = f"{base.__name__}_from_{path.stem}"
    model_meta[local_arch] = {**model_meta[base]}
    return local_arch
