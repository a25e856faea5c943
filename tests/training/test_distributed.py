"""Data-parallel training under torchrun (two gloo processes on the CPU): shards, summed scores,
one run folder, identical parameters on both ranks after every step, and an elastic restart after
a rank is killed that resumes from the last checkpoint."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.config import TrainConfig
from segstudio.training import events as ev
from segstudio.training.distributed import Ranks, process_batch, ranks_from_env, restarted_run
from segstudio.training.event_json import to_json
from segstudio.training.loaders import build_dataloaders
from segstudio.training.metrics import VolumeDice

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 2


def test_training_shards_cover_each_epoch_with_equal_batches(sample_data):
    shards = []
    for rank in range(3):
        dls = build_dataloaders(sample_data, bs=4, device=torch.device("cpu"), augment=False, seed=7)
        dls.train.shard(rank, 3)
        shards.append((list(dls.train.get_idxs()), len(dls.train)))
    n = len(sample_data.train_idx)
    assert len({count for _, count in shards}) == 1  # DDP needs the same number of batches everywhere
    seen = [i for idxs, _ in shards for i in idxs]
    assert set(seen) == set(range(n)) and len(seen) == 3 * math.ceil(n / 3)  # padded, nothing missing


def test_validation_shards_are_contiguous_and_partition_the_set(sample_data):
    parts, starts = [], []
    for rank in range(4):
        dls = build_dataloaders(sample_data, bs=4, device=torch.device("cpu"), augment=False)
        starts.append(dls.valid.shard(rank, 4))
        parts.append(list(dls.valid.get_idxs()))
    assert [i for p in parts for i in p] == list(range(len(sample_data.valid_idx)))
    assert starts == [sum(len(p) for p in parts[:r]) for r in range(4)]


def test_volume_dice_summed_over_shards_equals_one_process():
    rng = np.random.default_rng(0)
    item_volume = np.repeat([3, 5, 9], [4, 3, 5])
    preds = torch.from_numpy(rng.random((12, 3, 8, 8))).float()
    target = torch.from_numpy(rng.integers(0, 3, (12, 8, 8)))

    def run(metric, lo, hi):
        for a in range(lo, hi, 2):  # batches of two
            metric.accumulate(type("L", (), {"pred": preds[a:min(a + 2, hi)], "y": target[a:min(a + 2, hi)]}))
    whole = VolumeDice(3, item_volume)
    run(whole, 0, 12)
    parts = []
    for start, stop in ((0, 5), (5, 10), (10, 12)):
        part = VolumeDice(3, item_volume)
        part.offset = start
        part.reset()
        run(part, start, stop)
        parts.append(part)
    summed = VolumeDice(3, item_volume)
    summed.inter = sum(p.inter for p in parts)
    summed.total = sum(p.total for p in parts)
    assert np.allclose(summed.per_volume, whole.per_volume, equal_nan=True) and summed.value == whole.value


def test_ranks_and_restarts_are_read_from_torchrun(tmp_path):
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "TORCHELASTIC_RESTART_COUNT": "1",
           "TORCHELASTIC_RUN_ID": "job-42"}
    ranks = ranks_from_env(env)
    assert ranks == Ranks(1, 2, 1, 1, "job-42") and ranks.active and not ranks.main
    assert ranks_from_env({}) == Ranks() and ranks_from_env({"TORCHELASTIC_RUN_ID": "none"}).run_id == ""
    assert process_batch(8, 2) == 4 and process_batch(8, 3) == 3 and process_batch(2, 4) == 2
    for name, run_id, checkpoint in (("a", "job-42", False), ("b", "job-42", True), ("c", "job-7", True)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "distributed.json").write_text(json.dumps({"run_id": run_id}))
        if checkpoint:
            (tmp_path / name / "checkpoint.pth").write_bytes(b"x")
    assert restarted_run(tmp_path, ranks) == str(tmp_path / "b")
    assert restarted_run(tmp_path, Ranks(0, 2, 0, 0, "job-42")) == ""  # a first attempt starts a run
    assert restarted_run(tmp_path, Ranks(0, 2, 0, 1, "")) == ""  # no id to tell this launch's run by


def test_a_restart_after_the_run_finished_trains_nothing_again(tmp_path):
    """Rank 0 removes a finished run's checkpoint; a rank failing after that restarts the launch."""
    from segstudio.training.session import TrainingSession
    from tests.conftest import tiny_config

    run = tmp_path / "runs" / "done"
    run.mkdir(parents=True)
    (run / "distributed.json").write_text(json.dumps({"run_id": "job-42"}))
    finished = ev.Finished(str(run), 1, 0.9, 2)
    (run / "events.jsonl").write_text(to_json(ev.WarningEvent("earlier")) + "\n" + to_json(finished) + "\n")
    assert restarted_run(tmp_path / "runs", Ranks(0, 1, 0, 1, "job-42")) == str(run)
    events = []
    final = TrainingSession(Ranks(0, 1, 0, 1, "job-42")).run(tiny_config(tmp_path), events.append)
    assert final == finished, final
    assert any("restart 1" in e.message and "had finished; nothing is left to train" in e.message
               for e in events if isinstance(e, ev.WarningEvent))
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["done"]  # no new run started


@pytest.fixture(scope="module")
def launch(sample_dirs, tmp_path_factory):
    """One torchrun launch of two gloo processes, rank 1 killed in epoch 2 (the last) of the first attempt."""
    tmp = tmp_path_factory.mktemp("ddp")
    images, masks = sample_dirs
    steps = tmp / "steps.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DDP_STEPS": str(steps), "DDP_KILL_AT": "1",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--max-restarts", "1", str(ROOT / "tests/training/ddp_entry.py"), "train", "--images", str(images),
           "--masks", str(masks), "--arch", "resnet18", "--no-pretrained", "--size", "64", "--bs", "4",
           "--epochs", str(EPOCHS), "--device", "cpu", "--out", str(tmp / "runs"), "--name", "ddp"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in steps.read_text().splitlines()] if steps.exists() else []
    return proc, tmp / "runs", lines


@pytest.mark.slow
def test_two_processes_train_one_run_with_identical_ranks(launch):
    proc, runs, steps = launch
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders  # rank 0 alone makes it, and the restart resumes it
    run = folders[0]
    record = json.loads((run / "distributed.json").read_text())
    assert record["world_size"] == 2 and record["backend"] == "gloo" and record["effective_batch"] == 4
    rows = json.loads((run / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))  # each epoch once, across the restart
    assert proc.stdout.count("finished: best dice") == 1  # one rank prints
    assert "restarted the launch (restart 1): resuming" in proc.stderr
    attempts = {s["restart"] for s in steps}
    assert attempts == {0, 1} and len(steps) >= 2 * EPOCHS
    for s in steps:  # bitwise-equal parameters on both ranks after every optimizer step
        assert s["digests"][0] == s["digests"][1], s
    assert max(r["dice_mean"] for r in rows) > 0.3  # it learned


@pytest.mark.slow
def test_summed_scores_equal_a_single_process_evaluation(launch):
    from segstudio.data import load_dataset
    from segstudio.training.learner import build_learner

    _, runs, _ = launch
    run = next(p for p in runs.iterdir() if p.is_dir())
    cfg = TrainConfig.load(run / "config.json")
    data, _ = load_dataset(cfg.data, cfg.size)
    built = build_learner(cfg, data, torch.device("cpu"))
    meta = json.loads((run / "model.json").read_text())
    built.learn.model.load_state_dict(torch.load(run / "model.pth", weights_only=True))
    valid_loss = float(built.learn.validate()[0])
    row = json.loads((run / "metrics.json").read_text())[meta["epoch"] - 1]
    for name, dice in zip(data.codes, built.dice.per_class):
        assert row[f"dice_{name}"] == pytest.approx(dice, abs=2e-3, nan_ok=True), name
    assert row["dice_mean"] == pytest.approx(built.dice.value, abs=2e-3)
    assert row["valid_loss"] == pytest.approx(valid_loss, rel=1e-3)
