"""Parameter groups of a ResNet U-Net and the learning rate each gets (no torch: the GUI uses it).

fastai splits a ResNet DynamicUnet into three groups and spreads `slice(lo, hi)` geometrically
over them (fastcore's `even_mults`): the early encoder gets `lo`, the decoder `hi`.
"""

from __future__ import annotations

from fastcore.basics import even_mults

RESNET_GROUPS = ("encoder: stem, layer1, layer2", "encoder: layer3, layer4", "decoder")


def group_names(arch: str = "resnet34") -> list[str]:
    """Names of the optimizer parameter groups, encoder first (all supported archs are ResNets)."""
    return list(RESNET_GROUPS)


def lr_plan(lr_lo: float, lr_hi: float, n_groups: int = len(RESNET_GROUPS)) -> list[float]:
    """The peak LR of each group for `slice(lr_lo, lr_hi)`: fastcore's `even_mults`, as fastai uses it."""
    return [lr_hi] if n_groups == 1 else [float(lr) for lr in even_mults(lr_lo, lr_hi, n_groups)]
