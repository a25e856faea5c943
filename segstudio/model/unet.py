"""A run's U-Net built from its plan: fastai's DynamicUnet on a torchvision encoder, with the
plan's normalisation layers and no weights (the run's model.pth holds them)."""

from __future__ import annotations

from torch import nn

from ..preprocess.plan import Plan
from .norms import INSTANCE, to_instance_norm
from .weights import architecture


def build_unet(plan: Plan) -> nn.Module:
    """The untrained network `plan` describes (arch, classes, size, input channels, norm)."""
    from fastai.vision.learner import create_unet_model  # here: an ONNX model predicts without fastai

    model = create_unet_model(architecture(plan.arch), plan.n_out, (plan.size, plan.size),
                              pretrained=False, n_in=plan.n_in)
    return to_instance_norm(model) if plan.norm == INSTANCE else model
