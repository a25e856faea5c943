"""SharedGridAffine: the same augmentation as fastai's AffineCoordTfm, one grid per batch."""

import random

import pytest
import torch
from fastai.torch_core import TensorImage, TensorMask
from fastai.vision.augment import AffineCoordTfm, aug_transforms

from segstudio.training.augment import AUG_PARAMS, SharedGridAffine, augmentations


def _batch():
    g = torch.Generator().manual_seed(0)
    x = TensorImage(torch.rand(6, 1, 48, 40, generator=g))
    y = TensorMask(torch.randint(0, 3, (6, 48, 40), generator=g))
    return x, y


@pytest.mark.parametrize("params", [AUG_PARAMS, {**AUG_PARAMS, "max_warp": 0.0}, {**AUG_PARAMS, "max_warp": 0.4}])
def test_matches_fastai_for_the_same_random_draws(params):
    fastai_tfm = aug_transforms(**params)[0]
    ours = SharedGridAffine.from_fastai(aug_transforms(**params)[0])
    x, y = _batch()
    changed = 0
    for seed in range(8):
        torch.manual_seed(seed), random.seed(seed)
        x1, y1 = fastai_tfm((x, y), split_idx=0)
        torch.manual_seed(seed), random.seed(seed)
        x2, y2 = ours((x, y), split_idx=0)
        assert type(x2) is TensorImage and type(y2) is TensorMask and y2.dtype == y1.dtype
        assert x2.shape == x1.shape and y2.shape == y1.shape
        assert torch.allclose(x1, x2, atol=1e-4)
        assert (y1 != y2).float().mean() < 1e-3  # nearest sampling may flip a pixel on a boundary
        changed += int((x2 - x).abs().max() > 1e-3)
    assert changed >= 4  # it did augment


def test_validation_batches_pass_through_unchanged():
    x, y = _batch()
    x2, y2 = augmentations()[0]((x, y), split_idx=1)
    assert torch.allclose(x2, x, atol=1e-5) and torch.equal(y2, y)


def test_augmentations_replace_only_the_affine_step():
    ours, theirs = augmentations(), aug_transforms(**AUG_PARAMS)
    assert [type(t) for t in ours[1:]] == [type(t) for t in theirs[1:]]
    assert isinstance(ours[0], SharedGridAffine) and isinstance(theirs[0], AffineCoordTfm)
