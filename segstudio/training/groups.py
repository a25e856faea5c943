"""Parameter groups of a ResNet U-Net and the learning rate each gets (pure Python, no torch).

fastai splits a ResNet DynamicUnet into three groups and spreads `slice(lo, hi)` geometrically
over them (fastcore's `even_mults`): the early encoder gets `lo`, the decoder `hi`.
"""

from __future__ import annotations

RESNET_GROUPS = ("encoder: stem, layer1, layer2", "encoder: layer3, layer4", "decoder")


def group_names(arch: str = "resnet34") -> list[str]:
    """Names of the optimizer parameter groups, encoder first (all supported archs are ResNets)."""
    return list(RESNET_GROUPS)


def lr_plan(lr_lo: float, lr_hi: float, n_groups: int = len(RESNET_GROUPS)) -> list[float]:
    """The peak LR of each group for `slice(lr_lo, lr_hi)`, as fastai computes it."""
    if n_groups == 1:
        return [lr_hi]
    step = (lr_hi / lr_lo) ** (1 / (n_groups - 1))
    return [lr_lo * step**i for i in range(n_groups)]
