"""A run's U-Net built from its plan: fastai's DynamicUnet on a torchvision encoder, with the
plan's full-resolution head and normalisation layers and no weights (the run's model.pth holds them)."""

from __future__ import annotations

from torch import nn

from ..preprocess.plan import Plan
from .norms import INSTANCE, to_instance_norm
from .weights import architecture

# Channels of the full-resolution head (0: fastai's own, as wide as its input). fastai's last_cross
# ResBlock keeps all 96 + n_in channels for two 3x3 convs at full resolution, 45% of a 128 px step on
# the CPU; 32 (nnU-Net's first-stage width) made steps 0.72 -> 0.47 s with the same Dice per epoch on
# MNI slices (tests/benchmarks/README.md, "A slimmer full-resolution head"). fastai's bottle=True
# would halve it but fails in fastai 2.8 (the final 1x1 conv still expects the full width).
HEAD_WIDTH = 32


def build_unet(plan: Plan) -> nn.Module:
    """The untrained network `plan` describes (arch, classes, size, input channels, head, norm)."""
    from fastai.vision.learner import create_unet_model  # here: an ONNX model predicts without fastai

    model = create_unet_model(architecture(plan.arch), plan.n_out, (plan.size, plan.size),
                              pretrained=False, n_in=plan.n_in)
    slim_head(model, plan.head)
    return to_instance_norm(model) if plan.norm == INSTANCE else model


def slim_head(model: nn.Module, width: int) -> nn.Module:
    """`model` (a DynamicUnet) with its full-resolution ResBlock narrowed to `width` channels and
    the final 1x1 conv to match, in place (new, untrained layers); width 0 leaves fastai's."""
    if not width:
        return model
    from fastai.layers import ConvLayer, ResBlock
    from fastai.torch_core import apply_init

    layers = list(model.layers)
    block = max(i for i, layer in enumerate(layers) if isinstance(layer, ResBlock))
    ni, n_out = layers[block].convpath[0][0].in_channels, layers[block + 1][0].out_channels
    model.layers[block] = ResBlock(1, ni, width, act_cls=nn.ReLU, norm_type=None)
    apply_init(model.layers[block], nn.init.kaiming_normal_)  # as DynamicUnet initialises its own block
    model.layers[block + 1] = ConvLayer(width, n_out, ks=1, act_cls=None, norm_type=None)
    return model
