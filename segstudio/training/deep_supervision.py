"""Deep supervision (nnU-Net's): the decoder's lower-resolution outputs get 1x1 heads of their
own, and while training the loss adds their losses against nearest-downsampled masks, weighted
1/2, 1/4, 1/8 of the full-resolution loss (normalised to sum to 1).

fastai's DynamicUnet has no auxiliary outputs, so forward hooks on its UnetBlocks apply the heads
inside the model's forward (DistributedDataParallel sees them used) and keep the results for the
loss. The heads are training-only: in eval mode nothing is kept, the model returns what it
always did, and saved models drop them (`deployable_state`), so predictors never see them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from fastai.vision.models.unet import UnetBlock
from torch import nn

PREFIX = "ds_heads."  # the heads' keys in the model's state dict
LEVELS = 3  # the last three UnetBlocks: 1/8, 1/4 and 1/2 of the output size


class DeepSupervision:
    """Heads on `model`'s last UnetBlocks (added to it as `model.ds_heads`), and the kept outputs."""

    def __init__(self, model: nn.Module, n_out: int):
        blocks = [m for m in model.modules() if isinstance(m, UnetBlock)][-LEVELS:]
        model.ds_heads = nn.ModuleList(nn.Conv2d(b.conv2[0].out_channels, n_out, 1) for b in blocks)
        self.outputs: dict[int, torch.Tensor] = {}
        for i, (block, head) in enumerate(zip(blocks, model.ds_heads)):
            block.register_forward_hook(self._keep(i, head, model))
        # coarsest first: weights 1/8, 1/4, 1/2, then 1 for the full-resolution output
        weights = torch.tensor([2.0 ** -(LEVELS - i) for i in range(LEVELS)] + [1.0])
        self.weights = (weights / weights.sum()).tolist()

    def _keep(self, i: int, head: nn.Module, model: nn.Module):
        def hook(_module, _inputs, output):
            if model.training:
                self.outputs[i] = head(output)
        return hook

    def loss(self, base) -> "SupervisedLoss":
        return SupervisedLoss(base, self)


class SupervisedLoss:
    """`base` plus the kept outputs' losses; plain `base` when nothing was kept (validation)."""

    def __init__(self, base, supervision: DeepSupervision):
        self.base, self.supervision = base, supervision

    def __call__(self, pred, targ):
        kept, weights = self.supervision.outputs, self.supervision.weights
        if len(kept) < LEVELS:
            return self.base(pred, targ)
        total = weights[-1] * self.base(pred, targ)
        for i in range(LEVELS):
            aux = kept.pop(i)
            small = F.interpolate(targ[:, None].float(), size=aux.shape[-2:], mode="nearest")[:, 0]
            total = total + weights[i] * self.base(aux, small.to(targ.dtype))
        return total

    def activation(self, x):
        return torch.softmax(x, dim=1)

    def decodes(self, x):
        return x.argmax(dim=1)


def with_heads(splitter):
    """fastai's parameter-group splitter with the heads in the last (decoder) group: the
    ResNet U-Net splitter takes the model's layers only, so they would never be trained."""
    def split(model):
        groups = list(splitter(model))
        groups[-1] = list(groups[-1]) + list(model.ds_heads.parameters())
        return groups
    return split


def deployable_state(model: nn.Module) -> dict:
    """The model's state dict without the training-only heads."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith(PREFIX)}
