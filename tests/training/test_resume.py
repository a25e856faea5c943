"""Checkpoints and resume: a run stopped (or killed with SIGKILL) after an epoch continues where it
was (weights, optimizer state, schedule position, generators), writes every epoch once, and ends
with the model an uninterrupted run gives: identically without augmentation; with augmentation
the first resumed batch is the same but later ones drift (see the README)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segstudio.cli.main import main
from segstudio.config import TrainConfig
from segstudio.errors import SegstudioError
from segstudio.training import events as ev
from segstudio.runs import CHECKPOINT
from segstudio.training.checkpoint import load_checkpoint
from segstudio.training.session import TrainingSession
from tests.conftest import tiny_config

EPOCHS = 3




@pytest.fixture(scope="module")
def uninterrupted(sample_data, tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("whole"), epochs=EPOCHS, bs=4, size=64, augment=False,
                      keep_checkpoint=True)
    events = []
    final = TrainingSession().run(cfg, events.append, dataset=sample_data)
    assert isinstance(final, ev.Finished)
    assert (Path(final.run_dir) / CHECKPOINT).is_file()  # finished, and kept as asked
    return final, events


def uninterrupted_first_batch(uninterrupted):
    return next(e for e in uninterrupted[1] if isinstance(e, ev.BatchEnd) and e.epoch == 1)


@pytest.mark.slow
def test_a_stopped_run_resumes_to_the_same_model(uninterrupted, sample_data, tmp_path):
    cfg = tiny_config(tmp_path, epochs=EPOCHS, bs=4, size=64, augment=False, keep_checkpoint=True)
    session = TrainingSession()

    def stop_after_first_epoch(e):
        if isinstance(e, ev.EpochEnd):
            session.cancel()
    stopped = session.run(cfg, stop_after_first_epoch, dataset=sample_data)
    assert isinstance(stopped, ev.Cancelled) and load_checkpoint(stopped.run_dir)["epochs_done"] == 1

    events = []
    config = TrainConfig.load(Path(stopped.run_dir) / "config.json")
    final = TrainingSession().run(config, events.append, dataset=sample_data, resume=stopped.run_dir)
    assert isinstance(final, ev.Finished), final
    assert final.run_dir == stopped.run_dir and final.epochs_done == EPOCHS
    epochs = [e.epoch for e in events if isinstance(e, ev.EpochEnd)]
    assert epochs == list(range(EPOCHS))  # the first replayed, each once
    rows = json.loads((Path(final.run_dir) / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    resumed = next(e for e in events if isinstance(e, ev.BatchEnd))
    assert resumed.epoch == 1 and resumed.iteration == uninterrupted_first_batch(uninterrupted).iteration
    assert abs(resumed.loss - uninterrupted_first_batch(uninterrupted).loss) < 1e-5  # same weights, same batch
    assert resumed.lrs == pytest.approx(uninterrupted_first_batch(uninterrupted).lrs)  # the schedule goes on
    mine, theirs = load_checkpoint(final.run_dir)["model"], load_checkpoint(uninterrupted[0].run_dir)["model"]
    assert max(float((mine[k].float() - theirs[k].float()).abs().max()) for k in mine) < 1e-6
    assert final.best_dice == pytest.approx(uninterrupted[0].best_dice, abs=1e-6)


@pytest.mark.slow
def test_a_checkpoint_of_another_optimiser_resumes_with_a_fresh_one(sample_data, tmp_path):
    """A checkpoint saved with fastai's own Adam (the CPU's optimiser before fused AdamW; MPS's
    still) resumes: same weights and epochs, the optimiser's averages afresh, and a warning."""
    from fastai.optimizer import Adam

    from segstudio.training.checkpoint import _plain, write_checkpoint

    cfg = tiny_config(tmp_path, epochs=2, bs=4, size=64, augment=False, keep_checkpoint=True)
    session = TrainingSession()
    stopped = session.run(cfg, lambda e: isinstance(e, ev.EpochEnd) and session.cancel(), dataset=sample_data)
    assert isinstance(stopped, ev.Cancelled)
    payload = load_checkpoint(stopped.run_dir)
    assert "param_groups" in payload["opt"]  # fused AdamW's state, torch's format
    weights = [torch.nn.Parameter(v.float()) for v in payload["model"].values() if v.is_floating_point()]
    old = Adam(weights, lr=1e-3)
    for w in weights:
        w.grad = torch.zeros_like(w)
    old.step()  # running averages, as a checkpoint after an epoch holds
    payload["opt"] = _plain(old.state_dict())  # as checkpoint_state wrote fastai's Adam
    write_checkpoint(stopped.run_dir, payload)

    events = []
    config = TrainConfig.load(Path(stopped.run_dir) / "config.json")
    final = TrainingSession().run(config, events.append, dataset=sample_data, resume=stopped.run_dir)
    assert isinstance(final, ev.Finished), final
    assert [e.epoch for e in events if isinstance(e, ev.EpochEnd)] == [0, 1]
    assert any("another optimiser's state" in e.message for e in events if isinstance(e, ev.WarningEvent))


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_the_cli(uninterrupted, sample_dirs, tmp_path):
    images, masks = sample_dirs
    out = tmp_path / "runs"
    args = ["train", "--images", str(images), "--masks", str(masks), "--arch", "resnet18", "--no-pretrained",
            "--size", "64", "--bs", "4", "--epochs", str(EPOCHS + 1), "--device", "cpu", "--out", str(out),
            "--name", "killed"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from segstudio.cli.main import main; sys.exit(main())",
                             *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300

    def checkpoints():
        return list(out.glob(f"*-killed/{CHECKPOINT}"))
    while not checkpoints() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run_dir = checkpoints()[0].parent
    done = load_checkpoint(run_dir)["epochs_done"]
    assert 1 <= done < EPOCHS + 1, "the run ended before it could be killed"
    (run_dir / f".{CHECKPOINT}.half").write_bytes(b"\x80\x02half a checkpoint")  # a write cut short
    assert main(["train", "--resume", str(run_dir)]) == 0
    rows = json.loads((run_dir / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 2))
    assert not (run_dir / CHECKPOINT).exists()  # finished: removed (--keep-checkpoint keeps it)
    assert (run_dir / "model.pth").is_file()


def test_resume_without_a_checkpoint_says_why(tmp_path):
    with pytest.raises(SegstudioError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(SegstudioError, match="cannot be read"):
        load_checkpoint(tmp_path)
    assert torch  # torch.load is what reads it


@pytest.mark.slow
def test_a_full_disk_ends_the_run_and_keeps_the_last_checkpoint(sample_data, tmp_path, monkeypatch):
    from segstudio.training import checkpoint

    real, calls = checkpoint.write_atomic, []

    def full_on_the_second_epoch(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)
    monkeypatch.setattr(checkpoint, "write_atomic", full_on_the_second_epoch)
    cfg = tiny_config(tmp_path, epochs=2, bs=4, size=64, augment=False)
    final = TrainingSession().run(cfg, lambda e: None, dataset=sample_data)
    assert isinstance(final, ev.Failed) and "disk is full" in final.message, final
    assert final.run_dir and "--resume" in final.advice and "kept" in final.advice
    assert "free some space" in final.advice and "permissions" not in final.advice
    assert load_checkpoint(final.run_dir)["epochs_done"] == 1  # the last complete one
    assert (Path(final.run_dir) / "model.pth").is_file()
    assert not [p for p in Path(final.run_dir).iterdir() if p.name.startswith(".")]  # no half-written file


def test_an_unwritable_runs_folder_is_a_clear_failure(sample_data, tmp_path, monkeypatch):
    from segstudio.training import session

    def refused(out_dir, name="", exact=False):  # what mkdir raises in a folder without write permission
        raise PermissionError(errno.EACCES, "Permission denied", str(out_dir))
    monkeypatch.setattr(session, "new_run_dir", refused)
    final = TrainingSession().run(tiny_config(tmp_path, epochs=1), lambda e: None, dataset=sample_data)
    assert isinstance(final, ev.Failed) and "cannot be written" in final.message, final
    assert "permission denied" in final.message.lower() and "another runs folder" in final.advice
    assert "space" not in final.advice and "writable" in final.advice  # the advice fits the problem
