"""nnU-Net's recipe pieces as options: SGD with poly decay, deep supervision, instance norm."""

import json

import numpy as np
import pytest
import torch

from segstudio.config import Norm, Schedule
from segstudio.training import events as ev
from segstudio.training.session import TrainingSession
from tests.conftest import TRAIN_EPOCHS, tiny_config

DICE_FLOOR = 0.5  # an untrained U-Net on the phantoms scores far below this


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture
def unet():
    from fastai.vision.learner import create_unet_model
    from torchvision.models import resnet18

    torch.manual_seed(0)
    return create_unet_model(resnet18, 3, (64, 64), pretrained=False, n_in=3)


def test_deep_supervision_adds_weighted_losses_at_lower_resolutions(unet):
    from segstudio.training.deep_supervision import PREFIX, DeepSupervision, deployable_state
    from segstudio.training.losses import IGNORE, make_loss

    base = make_loss("ce_dice")
    supervision = DeepSupervision(unet, 3)
    loss = supervision.loss(base)
    assert np.isclose(sum(supervision.weights), 1) and supervision.weights == sorted(supervision.weights)
    x = torch.randn(2, 3, 64, 64)
    y = torch.randint(0, 3, (2, 64, 64))
    y[:, :8] = IGNORE  # padding: ignored at every resolution
    unet.train()
    pred = unet(x)
    assert [tuple(o.shape) for o in supervision.outputs.values()] == [(2, 3, 8, 8), (2, 3, 16, 16), (2, 3, 32, 32)]
    total = loss(pred, y)
    assert not supervision.outputs  # used once
    assert torch.isfinite(total) and not torch.isclose(total, base(pred, y))
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in unet.ds_heads.parameters())
    unet.eval()
    with torch.no_grad():
        pred = unet(x)
    assert not supervision.outputs and torch.isclose(loss(pred, y), base(pred, y))  # validation: plain
    state = deployable_state(unet)
    assert state and not any(k.startswith(PREFIX) for k in state)
    assert any(k.startswith(PREFIX) for k in unet.state_dict())


def test_instance_norm_keeps_the_affine_and_ignores_the_batch(unet):
    from segstudio.model.norms import to_instance_norm

    bn = [m for m in unet.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    weights = [m.weight.detach().clone() for m in bn]
    to_instance_norm(unet)
    norms = [m for m in unet.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in unet.modules())
    assert len(norms) == len(bn) and all(torch.equal(n.weight, w) for n, w in zip(norms, weights))
    unet.eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():  # an image's output does not depend on the others in its batch
        assert torch.allclose(unet(x)[:1], unet(x[:1]), atol=1e-4)


@pytest.mark.slow
def test_nnunet_recipe_trains_predicts_and_resumes(sample_data, tmp_path):
    """Poly SGD, deep supervision and instance norm together (one run keeps the suite short)."""
    from segstudio.config import POLY_RANDOM_INIT_LRS
    from segstudio.inference import Predictor
    from segstudio.training.checkpoint import load_checkpoint, load_optimizer
    from segstudio.training.learner import build_learner
    from segstudio.training.metrics import dice_per_class, foreground_mean
    from segstudio.training.parent import Parent
    from segstudio.training.schedules import POWER

    events = []
    cfg = tiny_config(tmp_path, schedule=Schedule.poly, deep_supervision=True, norm=Norm.instance,
                      epochs=TRAIN_EPOCHS, bs=4, augment=False, keep_checkpoint=True)
    final = TrainingSession().run(cfg, events.append, dataset=sample_data)
    assert isinstance(final, ev.Finished), final
    assert final.best_dice > DICE_FLOOR, [e.dice_mean for e in of(events, ev.EpochEnd)]
    # poly: from nnU-Net's 1e-2 down towards 0 as (1 - t)^0.9, batch by batch
    lrs = np.array([b.lrs[-1] for b in of(events, ev.BatchEnd)])
    expected = POLY_RANDOM_INIT_LRS[1] * (1 - np.arange(len(lrs)) / len(lrs)) ** POWER
    assert np.allclose(lrs, expected, rtol=1e-3), (lrs[:3], lrs[-3:])
    started = of(events, ev.Started)[0]
    assert (started.lr_lo, started.lr_hi) == POLY_RANDOM_INIT_LRS
    run = final.run_dir
    meta = json.loads(open(f"{run}/model.json").read())
    saved = json.loads(open(f"{run}/config.json").read())
    assert meta["norm"] == "instance" and saved["norm"] == "instance" and saved["deep_supervision"] is True
    # the saved model is a plain instance-norm U-Net (no heads): the predictor scores what validation did
    predictor = Predictor.load(run, "cpu")
    valid = sample_data.valid_idx
    preds = predictor.probabilities_resized(sample_data.images[valid]).argmax(1).numpy()
    dice = foreground_mean(dice_per_class(preds, sample_data.masks[valid], len(sample_data.codes)))
    assert abs(dice - final.best_dice) < 0.01, (dice, final.best_dice)
    # a resume rebuilds the heads from the checkpoint and the wrapped SGD's momentum (torch's format)
    ckpt = load_checkpoint(run)
    assert all(g["nesterov"] and g["momentum"] == 0.99 for g in ckpt["opt"]["param_groups"])
    learn = build_learner(cfg, sample_data, torch.device("cpu"), parent=Parent(run, meta, ckpt["model"], cfg.lrs())).learn
    assert torch.equal(learn.model.ds_heads[0].weight, ckpt["model"]["ds_heads.0.weight"])
    load_optimizer(learn, ckpt["opt"])
    trained = {id(p) for group in learn.opt.param_lists for p in group}
    assert all(id(p) in trained for p in learn.model.parameters())  # the heads too
    buffers = [s["momentum_buffer"] for s in learn.opt.opt.state.values()]
    assert buffers and all(torch.isfinite(b).all() and b.abs().sum() > 0 for b in buffers)


def test_auto_norm_is_instance_from_a_random_encoder_only():
    from segstudio.training.learner import resolve_norm

    warnings = []
    assert resolve_norm(Norm.auto, False, 64, warnings) == "instance"
    assert resolve_norm(Norm.auto, True, 256, warnings) == "batch"  # ImageNet weights came with BatchNorm
    assert resolve_norm(Norm.auto, False, 32, warnings) == "batch" and not warnings  # a 1 x 1 bottleneck
    assert resolve_norm(Norm.batch, False, 256, warnings) == "batch"
    assert resolve_norm(Norm.instance, True, 256, warnings) == "instance" and not warnings
    assert resolve_norm(Norm.instance, False, 32, warnings) == "batch" and "at least 64 px" in warnings[0]


def test_the_automatic_batch_covers_at_most_five_percent_of_the_training_pixels(sample_data):
    from dataclasses import replace

    from segstudio.training.loaders import auto_batch_size

    n = len(sample_data.train_idx)
    assert auto_batch_size(sample_data) == max(2, min(8, int(0.05 * n)))
    assert auto_batch_size(replace(sample_data, train_idx=sample_data.train_idx[:10])) == 2  # never below 2
    many = np.resize(sample_data.train_idx, 400)  # 400 training images: 5% is 20, capped at 8
    assert auto_batch_size(replace(sample_data, train_idx=many)) == 8
    assert auto_batch_size(replace(sample_data, train_idx=np.resize(sample_data.train_idx, 120))) == 6


@pytest.mark.slow
def test_an_automatic_batch_is_recorded_as_the_run_used_it(sample_data, tmp_path):
    events = []
    final = TrainingSession().run(tiny_config(tmp_path, bs=0, size=32), events.append, dataset=sample_data)
    assert isinstance(final, ev.Finished), final
    [started] = [e for e in events if isinstance(e, ev.Started)]
    recorded = json.loads((tmp_path / "runs" / final.run_dir.split("/")[-1] / "config.json").read_text())
    assert started.bs == recorded["bs"] == 2  # 32 training images: 5% is 1.6, at least 2
    assert started.iters_per_epoch == len(sample_data.train_idx) // 2
