"""Normalisation layers of the U-Net: fastai's (BatchNorm) or instance norm, nnU-Net's choice,
which does not depend on the batch (small batches, one image's statistics at prediction)."""

from __future__ import annotations

from torch import nn

BATCH, INSTANCE = "batch", "instance"


def to_instance_norm(model: nn.Module) -> nn.Module:
    """Every BatchNorm2d of `model` replaced in place by an affine InstanceNorm2d that starts
    from its scale and shift (a pretrained encoder keeps those; its running statistics go)."""
    for name, child in model.named_children():
        if isinstance(child, nn.BatchNorm2d):
            norm = nn.InstanceNorm2d(child.num_features, eps=child.eps, affine=True)
            norm.weight.data.copy_(child.weight.data)
            norm.bias.data.copy_(child.bias.data)
            setattr(model, name, norm.to(child.weight.device))
        else:
            to_instance_norm(child)
    return model
