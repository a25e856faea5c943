"""The training engine on real (tiny) data: it learns, reports, stops and fails cleanly."""

import json
import math
import threading

import numpy as np
import pytest
import torch

from segstudio.config import Schedule, TrainConfig
from segstudio.training import events as ev
from segstudio.runs import CHECKPOINT
from segstudio.training.session import TrainingSession
from tests.conftest import TRAIN_EPOCHS, tiny_config

DICE_FLOOR = 0.5  # an untrained U-Net on the phantoms scores far below this


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def test_training_learns_and_reports(trained_run, sample_data):
    final, events = trained_run
    assert isinstance(final, ev.Finished), final
    assert isinstance(events[0], ev.Started) and events[-1] is final
    started = events[0]
    assert started.codes == tuple(sample_data.codes) and not started.pretrained
    assert [g.frozen for g in started.groups] == [False, False, False]
    epochs = of(events, ev.EpochEnd)
    assert [e.epoch for e in epochs] == list(range(TRAIN_EPOCHS))
    assert len(epochs[-1].dice) == len(sample_data.codes)
    assert final.best_dice > DICE_FLOOR, [e.dice_mean for e in epochs]
    batches = of(events, ev.BatchEnd)
    assert [b.iteration for b in batches] == list(range(len(batches)))
    assert batches[-1].total_iterations == len(batches)
    assert all(len(b.lrs) == 3 and math.isfinite(b.loss) for b in batches)
    previews = of(events, ev.Preview)
    assert len(previews) == TRAIN_EPOCHS and len(previews[-1].preds) == 2
    assert previews[-1].preds[0].shape == sample_data.masks.shape[1:]


def test_run_folder_is_complete(trained_run, sample_data):
    final, _ = trained_run
    from pathlib import Path

    run = Path(final.run_dir)
    config = json.loads((run / "config.json").read_text())
    assert config["epochs"] == TRAIN_EPOCHS and config["arch"] == "resnet18"
    rows = json.loads((run / "metrics.json").read_text())
    assert len(rows) == TRAIN_EPOCHS and "dice_mean" in rows[0]
    assert [r["epoch"] for r in rows] == list(range(1, TRAIN_EPOCHS + 1))  # as the app shows them
    csv_lines = (run / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == TRAIN_EPOCHS + 1 and csv_lines[0].startswith("epoch,")
    meta = json.loads((run / "model.json").read_text())
    assert meta["codes"] == list(sample_data.codes) and meta["epoch"] == final.best_epoch + 1
    # what was used: the random encoder's LRs and the CT window computed for the dataset
    assert config["pretrained"] is False and config["lr_lo"] == config["lr_hi"] == pytest.approx(3e-3)
    assert config["data"]["window"] == meta["window"] == sample_data.window != "auto"
    state = torch.load(run / "model.pth", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert not list(run.glob(".*"))  # no temporary files left behind
    assert not (run / CHECKPOINT).exists()  # a finished run is continued from its model, not resumed
    from segstudio.files import FILE_MODE

    assert all((p.stat().st_mode & 0o777) == FILE_MODE for p in run.iterdir())  # not mkstemp's 0600


def test_config_records_the_encoder_really_used(sample_data):
    from types import SimpleNamespace

    from segstudio.config import TrainConfig
    from segstudio.training.session import used_config

    from segstudio.config import DataConfig

    asked = TrainConfig(pretrained=True, data=DataConfig("data/images", "data/masks"))  # relative
    used = used_config(asked, sample_data, SimpleNamespace(pretrained=False, norm="instance", bs=2))  # weights missing
    assert used.pretrained is False and (used.lr_lo, used.lr_hi) == (3e-3, 3e-3)
    assert asked.bs == 0 and used.bs == 2  # the batch "auto" chose
    assert asked.norm == "auto" and used.norm == "instance"  # what "auto" chose
    assert asked.pretrained is True and asked.lr_lo is None  # the request itself is unchanged
    assert used.data.images.startswith("/") and used.data.images.endswith("data/images")
    assert used.data.labels == "classes"  # the decision "auto" took


def test_one_pair_fails_before_creating_a_run_folder(tmp_path):
    from PIL import Image

    from segstudio.config import DataConfig

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    Image.fromarray(np.arange(1024, dtype=np.uint16).reshape(32, 32)).save(images / "a.png")
    Image.fromarray((np.arange(1024).reshape(32, 32) % 7 == 0).astype(np.uint8)).save(masks / "a.png")
    events = []
    cfg = tiny_config(tmp_path, data=DataConfig(str(images), str(masks)))
    final = TrainingSession().run(cfg, events.append)
    assert isinstance(final, ev.Failed) and "at least 2 usable image/mask pairs" in final.message
    assert "found 1" in final.message and final.run_dir == ""
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())
    assert [e for e in events if isinstance(e, ev.Failed)] == [final]


def test_random_encoder_gets_flat_default_lrs(trained_run):
    started = trained_run[1][0]
    assert started.lr_lo == started.lr_hi == pytest.approx(3e-3)
    assert [g.lr for g in started.groups] == pytest.approx([3e-3] * 3)


@pytest.mark.slow
def test_pretrained_request_without_weights_warns_and_uses_random_lrs(sample_data, tmp_path):
    events = []
    cfg = tiny_config(tmp_path, pretrained=True)  # TORCH_HOME is an empty temporary folder
    session = TrainingSession()
    session.cancel()  # build, report, then stop before the first batch
    final = session.run(cfg, events.append, dataset=sample_data)
    warnings = " ".join(e.message for e in of(events, ev.WarningEvent))
    assert "not in the local torch cache" in warnings
    assert isinstance(final, ev.Cancelled) and not of(events, ev.BatchEnd)
    assert final.run_dir == "" and not list((tmp_path / "runs").iterdir())  # no model: no run folder
    started = of(events, ev.Started)[0]
    assert not started.pretrained and started.lr_lo == started.lr_hi


def _weights_file(tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "encoder.pth"
    torch.save(resnet18().state_dict(), path)
    return path


@pytest.mark.slow
def test_one_cycle_unfreezes_a_pretrained_encoder(sample_data, tmp_path, monkeypatch):
    """unet_learner freezes pretrained encoders; discriminative one-cycle must train them."""
    import segstudio.training.session as session_mod

    events, captured = [], {}
    build = session_mod.build_learner

    def spy(*args, **kwargs):
        built = build(*args, **kwargs)
        captured["built"] = built
        captured["before"] = built.learn.model[0][0].weight.detach().clone()  # first encoder conv
        return built

    monkeypatch.setattr(session_mod, "build_learner", spy)
    cfg = tiny_config(tmp_path, pretrained=True, weights_path=str(_weights_file(tmp_path)), lr_lo=1e-4, lr_hi=1e-3)
    final = TrainingSession().run(cfg, events.append, dataset=sample_data)
    assert isinstance(final, ev.Finished), final
    started = of(events, ev.Started)[0]
    assert started.pretrained
    assert [g.frozen for g in started.groups] == [False, False, False]
    assert [g.lr for g in started.groups] == pytest.approx([1e-4, 10**-3.5, 1e-3])
    after = captured["built"].learn.model[0][0].weight.detach()
    assert not torch.equal(after, captured["before"]), "the early encoder did not train"


@pytest.mark.parametrize("deep_supervision", [False, True])
def test_every_layer_of_a_pretrained_model_is_in_its_optimiser(sample_data, tmp_path, deep_supervision):
    """unet_learner builds the optimiser when it freezes a pretrained encoder; the layers put in
    afterwards (the slim head, deep-supervision heads) must be trained too, and the encoder stays
    frozen until the session unfreezes it."""
    from segstudio.training.learner import build_learner

    cfg = tiny_config(tmp_path, pretrained=True, weights_path=str(_weights_file(tmp_path)),
                      deep_supervision=deep_supervision)
    learn = build_learner(cfg, sample_data, torch.device("cpu")).learn
    assert learn.opt.frozen_idx == len(learn.opt.param_lists) - 1  # only the decoder trains at first
    learn.unfreeze()
    trained = [id(p) for group in learn.opt.param_lists for p in group]
    assert sorted(trained) == sorted(id(p) for p in learn.model.parameters())


@pytest.mark.slow
def test_fine_tune_trains_frozen_then_unfrozen(sample_data, tmp_path):
    events = []
    cfg = tiny_config(tmp_path, pretrained=True, weights_path=str(_weights_file(tmp_path)),
                      schedule=Schedule.fine_tune, freeze_epochs=1, epochs=1)
    final = TrainingSession().run(cfg, events.append, dataset=sample_data)
    assert isinstance(final, ev.Finished), final
    phases = of(events, ev.PhaseChanged)
    assert [p.name for p in phases] == ["frozen", "unfrozen"]
    assert [g.frozen for g in phases[0].groups] == [True, True, False]
    assert [g.frozen for g in phases[1].groups] == [False, False, False]
    assert [e.epoch for e in of(events, ev.EpochEnd)] == [0, 1]


@pytest.mark.slow
def test_cancel_in_fine_tune_frozen_phase_stops_the_whole_run(sample_data, tmp_path):
    events = []
    session = TrainingSession()
    cfg = tiny_config(tmp_path, pretrained=True, weights_path=str(_weights_file(tmp_path)),
                      schedule=Schedule.fine_tune, freeze_epochs=2, epochs=2)

    def on_event(e):
        events.append(e)
        if isinstance(e, ev.BatchEnd) and e.iteration == 1:
            session.cancel()

    final = session.run(cfg, on_event, dataset=sample_data)
    assert isinstance(final, ev.Cancelled)
    assert max(b.iteration for b in of(events, ev.BatchEnd)) == 1  # stopped within one batch
    assert [p.name for p in of(events, ev.PhaseChanged)] == ["frozen"]


@pytest.mark.slow
def test_cancel_from_another_thread(sample_data, tmp_path):
    events, first_batch = [], threading.Event()
    session = TrainingSession()

    def on_event(e):
        events.append(e)
        if isinstance(e, ev.BatchEnd):
            first_batch.set()

    result = {}
    worker = threading.Thread(target=lambda: result.update(final=session.run(
        tiny_config(tmp_path, epochs=50), on_event, dataset=sample_data)))
    worker.start()
    assert first_batch.wait(120)
    session.cancel()
    worker.join(60)
    assert not worker.is_alive()
    assert isinstance(result["final"], ev.Cancelled)
    n_batches = len(of(events, ev.BatchEnd))
    assert n_batches < 50 * of(events, ev.Started)[0].iters_per_epoch
    if not of(events, ev.EpochEnd):  # stopped inside the first epoch: no model, no run folder left
        assert result["final"].run_dir == "" and not list((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_nan_loss_fails_with_advice(sample_data, tmp_path, monkeypatch):
    from segstudio.training import learner as learner_mod

    real = learner_mod.make_loss
    monkeypatch.setattr(learner_mod, "make_loss", lambda name: (lambda p, t: real(name)(p, t) * float("nan")))
    events = []
    final = TrainingSession().run(tiny_config(tmp_path, epochs=3), events.append, dataset=sample_data)
    assert isinstance(final, ev.Failed)
    assert "NaN" in final.message and "learning rate" in final.advice
    assert len(of(events, ev.BatchEnd)) == 0


@pytest.mark.slow
def test_out_of_memory_fails_with_advice(sample_data, tmp_path, monkeypatch):
    from fastai.learner import Learner

    def oom(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Learner, "fit", oom)
    final = TrainingSession().run(tiny_config(tmp_path), lambda e: None, dataset=sample_data)
    assert isinstance(final, ev.Failed)
    assert "out of memory" in final.message and "batch size" in final.advice


def test_missing_folder_fails_cleanly(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg.data.images, cfg.data.masks = str(tmp_path / "nope"), str(tmp_path / "nope2")
    final = TrainingSession().run(cfg, lambda e: None)
    assert isinstance(final, ev.Failed) and "nope" in final.message


@pytest.mark.slow
def test_find_lr_returns_curve_and_range(sample_data, tmp_path):
    events = []
    result = TrainingSession().find_lr(tiny_config(tmp_path), events.append, dataset=sample_data, num_it=12)
    assert isinstance(result, ev.LRFound), result
    sweep = [e for e in of(events, ev.Progress) if e.message == "LR sweep"]
    assert [e.done for e in sweep] == list(range(1, len(sweep) + 1)) and sweep[0].total == 12
    assert len(result.lrs) == len(result.losses) > 5
    assert np.all(np.diff(result.lrs) > 0)
    assert 0 < result.suggested_lo <= result.suggested_hi
    assert result.suggested_lo == result.suggested_hi  # random encoder: flat range
    assert result.lrs[0] <= result.suggested_hi <= result.lrs[-1]


@pytest.mark.slow
@pytest.mark.parametrize("after_batches", [0, 3])
def test_find_lr_stopped_early_is_cancelled_not_failed(sample_data, tmp_path, monkeypatch, after_batches):
    from segstudio.training.callbacks import StopGuard

    seen = []
    original = StopGuard.before_batch

    def counting(self):
        seen.append(1)
        if len(seen) > after_batches:
            self.stop.set()
        return original(self)

    monkeypatch.setattr(StopGuard, "before_batch", counting)
    session = TrainingSession()
    if after_batches == 0:
        session.cancel()  # before the sweep starts
    result = session.find_lr(tiny_config(tmp_path), lambda e: None, dataset=sample_data, num_it=40)
    assert isinstance(result, ev.Cancelled), result


def test_lr_suggestions_from_a_short_sweep_fall_back():
    from segstudio.training.lr_find import suggestions

    lrs = [10 ** (-7 + i * 0.08) for i in range(100)]
    losses = [2.0 - 0.01 * i for i in range(60)] + [float("nan")] * 40
    valley_lr, at_min = suggestions(lrs, losses, 100)
    assert 0 < valley_lr <= at_min <= lrs[59]
    assert suggestions(lrs[:12], losses[:12], 100) == (0.0, 0.0)  # stopped early: too few points


@pytest.mark.slow
def test_batch_larger_than_the_training_set_is_said(sample_data, tmp_path):
    events = []
    session = TrainingSession()
    session.cancel()  # build and report only
    session.run(tiny_config(tmp_path, bs=500), events.append, dataset=sample_data)
    n = len(sample_data.train_idx)
    assert any(f"Batch size 500 is more than the {n} training images" in e.message
               for e in of(events, ev.WarningEvent))


def test_lr_suggestion_depends_on_the_encoder():
    from segstudio.training.lr_find import suggest_hi

    # the sample data's curve: valley early on the descent, lowest loss near 6e-3
    assert suggest_hi(3e-5, 6e-3, pretrained=True) == pytest.approx(3e-5)
    assert suggest_hi(3e-5, 6e-3, pretrained=False) == pytest.approx(2e-3)
    assert suggest_hi(3e-5, 10.0, pretrained=False) == pytest.approx(0.1)  # clipped


def test_lr_plan_matches_fastai_spreading():
    from fastai.optimizer import Adam
    from torch import nn

    from segstudio.training.groups import lr_plan

    params = [[nn.Parameter(torch.zeros(1))] for _ in range(3)]
    opt = Adam(params, lr=1e-3)
    opt.set_hyper("lr", slice(1e-5, 1e-2))
    assert [h["lr"] for h in opt.hypers] == pytest.approx(lr_plan(1e-5, 1e-2))


def test_exploding_validation_loss_is_warned_once():
    from segstudio.training.callbacks import EventReporter

    emitted = []
    reporter = EventReporter(emitted.append, None, 3, None, lambda *a: None, lambda row: None)
    for loss in (1.1, 3.0, 5e15, float("inf")):
        reporter._check_divergence(loss)
    warnings = of(emitted, ev.WarningEvent)
    assert len(warnings) == 1 and "5e+15" in warnings[0].message and "too high" in warnings[0].message


@pytest.mark.slow
@pytest.mark.parametrize("floor, warned", [(2.0, True), (-1.0, False)])
def test_a_run_that_learned_nothing_says_so(sample_data, tmp_path, monkeypatch, floor, warned):
    import segstudio.training.session as session_module

    monkeypatch.setattr(session_module, "LEARNED", floor)  # every Dice is below 2, none below -1
    events = []
    final = TrainingSession().run(tiny_config(tmp_path, size=32), events.append, dataset=sample_data)
    assert isinstance(final, ev.Finished)
    said = any("has not learned" in e.message for e in of(events, ev.WarningEvent))
    assert said == warned



def test_resuming_a_finished_run_says_it_finished_and_how_to_go_on(trained_run, sample_data):
    final, _ = trained_run
    config = TrainConfig.load(f"{final.run_dir}/config.json")
    failed = TrainingSession().run(config, lambda e: None, dataset=sample_data, resume=final.run_dir)
    assert isinstance(failed, ev.Failed), failed
    assert f"finished all {TRAIN_EPOCHS} epoch(s)" in failed.message and "--init-from" in failed.message
    assert "--keep-checkpoint" in failed.message
