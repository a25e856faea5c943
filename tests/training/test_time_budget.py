"""A time budget instead of epochs: the run ends near its budget, with the one-cycle schedule
sized to the epochs that fit, and records those epochs (config.json, events)."""

import json
import time
from pathlib import Path

import pytest
from fastai.callback.schedule import combined_cos

from segstudio.cli.main import build_parser
from segstudio.cli.train import train_config
from segstudio.training import events as ev
from segstudio.training.session import TrainingSession
from segstudio.training.time_budget import PROBE_STEPS
from tests.conftest import tiny_config

BUDGET = 30.0


@pytest.mark.slow
def test_a_time_budget_sizes_the_schedule_and_is_honoured(sample_data, tmp_path):
    cfg = tiny_config(tmp_path, epochs=1, bs=8, size=32, augment=False, time_budget=BUDGET)
    events = []
    t = time.monotonic()
    final = TrainingSession().run(cfg, events.append, dataset=sample_data)
    seconds = time.monotonic() - t
    assert isinstance(final, ev.Finished), final
    assert 0.5 * BUDGET <= seconds, seconds
    epochs = [e for e in events if isinstance(e, ev.EpochEnd)]
    # within 25% (the machine is shared), unless not even one epoch fitted (then it trains one)
    assert seconds <= 1.25 * BUDGET or (len(epochs) == 1 and epochs[0].seconds > BUDGET / 2), seconds
    recorded = json.loads((Path(final.run_dir) / "config.json").read_text())
    # not the 1 epoch configured: those that fit (a last re-estimate may drop one planned epoch)
    assert final.epochs_done == len(epochs) == recorded["epochs"] and recorded["time_budget"] == BUDGET
    planned = epochs[-1].epochs  # the schedule's length while the last epoch trained
    assert planned in (len(epochs), len(epochs) + 1)
    assert any("Time budget" in e.message for e in events if isinstance(e, ev.WarningEvent))
    batches = [e for e in events if isinstance(e, ev.BatchEnd)]
    per_epoch = len([b for b in batches if b.epoch == 0])
    total = batches[-1].total_iterations
    assert total == planned * per_epoch
    probe = min(PROBE_STEPS + 1, per_epoch)  # steps trained before the epochs were chosen
    hi = cfg.lrs(False)[1]  # one-cycle over the planned epochs after the probe: the last step's rate
    last = combined_cos(0.25, hi / 25, hi, hi / 1e5)((batches[-1].iteration - probe) / (total - probe))
    assert batches[-1].lrs[-1] == pytest.approx(last, rel=1e-4)


def test_the_cli_takes_a_time_budget_in_seconds(capsys):
    args = build_parser().parse_args(["train", "--images", "i", "--masks", "m", "--time-budget", "300"])
    assert train_config(args).time_budget == 300.0
    assert train_config(build_parser().parse_args(["train", "--images", "i"])).time_budget == 0.0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--images", "i", "--time-budget", "0"])
    assert "positive number of seconds" in capsys.readouterr().err


def fit_with_clock(step_seconds, deadline=100.0, n_train=64, lrs=None):
    """A tiny fastai fit (batches of 8) whose clock advances `step_seconds(epoch)` per training
    step and a third of that per validation batch; returns (epochs chosen, one by one; epochs
    trained; end time). `lrs`: a list that receives each training step's learning rate."""
    import torch
    from fastai.callback.core import Callback
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.losses import MSELossFlat

    from segstudio.training.time_budget import MAX_EPOCHS, TimeBudget

    x, y = torch.randn(n_train, 2), torch.randn(n_train, 1)
    dls = DataLoaders.from_dsets(list(zip(x, y)), list(zip(x[:16], y[:16])), bs=8)  # 2 valid batches
    now, chosen = [0.0], []

    class Clock(Callback):
        order = -30

        def after_batch(self):
            now[0] += step_seconds(self.epoch) * (1 if self.training else 1 / 3)

    class Rates(Callback):
        order = 70  # after the schedulers (60) set this step's rate

        def before_batch(self):
            if self.training and lrs is not None:
                lrs.append(self.opt.hypers[-1]["lr"])

    budget = TimeBudget(deadline, lambda n, note: chosen.append(n), clock=lambda: now[0])
    learn = Learner(dls, torch.nn.Linear(2, 1), loss_func=MSELossFlat(), cbs=[Clock(), budget, Rates()])
    with learn.no_logging(), learn.no_bar():
        learn.fit_one_cycle(MAX_EPOCHS, 1e-2)
    return chosen, len(learn.recorder.values), now[0]


@pytest.mark.slow
def test_the_epochs_that_fit_are_chosen_from_the_first_steps():
    chosen, trained, end = fit_with_clock(lambda epoch: 1.0)  # an epoch: 8 s of steps + 2 x 1/3 s validation
    assert chosen == [11] and trained == 11  # floor(100 / 8.67)
    assert 90 < end <= 100


@pytest.mark.slow
def test_a_slower_machine_shortens_the_schedule_and_the_budget_holds():
    chosen, trained, end = fit_with_clock(lambda epoch: 1.0 if epoch < 4 else 2.0)
    assert chosen[0] == 11 and chosen[-1] < 11 and trained == chosen[-1]
    assert end <= 100 + 2 * 8.67  # at most about the epoch that showed the slowdown over


def test_a_short_run_warms_up_after_the_probe_instead_of_jumping_to_the_peak_rate():
    lrs = []  # two steps an epoch: the probe is the whole first epoch
    chosen, trained, _ = fit_with_clock(lambda epoch: 1.0, deadline=20.0, n_train=16, lrs=lrs)
    assert chosen == [7] and trained == 7  # floor(20 / (2 + 2/3))
    offset, total = 2, 2 * 7
    schedule = combined_cos(0.25, 1e-2 / 25, 1e-2, 1e-2 / 1e5)
    assert lrs[:offset] == pytest.approx([schedule(0.0)] * offset, rel=0.01)  # the probe: the starting rate
    expected = [schedule(i / (total - offset)) for i in range(total - offset)]
    assert lrs[offset:] == pytest.approx(expected, rel=1e-4)  # then the whole schedule, warm-up first
    assert lrs[offset] < 0.1 * max(lrs)  # not the peak rate at once (it was: pct jumped to 2/14)
