"""The fused AdamW that CUDA runs train with behaves as fastai's Adam: the same discriminative
learning rates and one-cycle momentum reach it, and it trains as well (fused AdamW runs on the
CPU too in torch >= 2.4, so the check needs no GPU). It differs from fastai's Adam only in also
decaying biases and norm weights (fastai's wd_bn_bias=False is lost behind OptimWrapper)."""

import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.progress import ProgressCallback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.optimizer import Adam
from fastai.torch_core import set_seed
from fastcore.basics import noop
from torch import nn

from segstudio.training.schedules import fused_adamw


class _Seen(Callback):
    """The torch optimizer's (lr, beta1) of each group after every step."""

    def __init__(self):
        self.steps = []  # not reset in before_fit: fastai's validate() calls it too

    def after_step(self):
        groups = getattr(self.opt, "opt", None)
        if groups is not None:
            self.steps.append([(g["lr"], g["betas"][0]) for g in groups.param_groups])


def _train(opt_func):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, generator=gen)
    y = (x @ torch.tensor([1.0, -2.0, 3.0, 0.5])).unsqueeze(1)
    pairs = list(zip(x, y))
    dls = DataLoaders.from_dsets(pairs[:64], pairs[64:], bs=16, device="cpu", shuffle=False)
    set_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    seen = _Seen()
    learn = Learner(dls, model, loss_func=MSELossFlat(), opt_func=opt_func, cbs=[seen],
                    splitter=lambda m: [list(m[0].parameters()), list(m[2].parameters())])
    learn.remove_cb(ProgressCallback)
    learn.logger = noop
    before = learn.validate()[0]
    learn.fit_one_cycle(8, slice(1e-2, 1e-1))
    return before, learn.validate()[0], seen.steps


@pytest.mark.slow
def test_fused_adamw_gets_fastais_schedule_and_trains_as_well():
    try:
        torch.optim.AdamW([nn.Parameter(torch.zeros(1))], fused=True).step()
    except RuntimeError as exc:  # an old torch without the CPU kernel
        pytest.skip(f"no fused AdamW on this CPU: {exc}")
    before, ours, steps = _train(fused_adamw)
    _, fastais, _ = _train(Adam)
    assert ours < before / 5  # it learned
    assert ours == pytest.approx(fastais, rel=0.05)
    peak = max(steps, key=lambda groups: groups[1][0])
    assert peak[1][0] == pytest.approx(1e-1, rel=0.05)  # the decoder's rate
    assert peak[0][0] == pytest.approx(1e-2, rel=0.05)  # the encoder's, ten times lower
    betas = [groups[0][1] for groups in steps]
    assert max(betas) == pytest.approx(0.95, abs=0.01) and min(betas) == pytest.approx(0.85, abs=0.01)
