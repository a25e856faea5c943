"""A run another process writes: its events.jsonl (EventLog), following it as it grows
(FollowSession), and a run in a child process whose event lines come back as events
(ProcessSession, alone or under torchrun)."""

import json
import threading
import time
from pathlib import Path

import math
import pytest

from segstudio.training import events as ev
from segstudio.training.event_json import to_json
from segstudio.training.event_log import EVENTS, EventLog
from segstudio.training.follow_session import FollowSession
from segstudio.training.process_session import ProcessSession, launch_command
from tests.conftest import TRAIN_EPOCHS, tiny_config


def epoch(i, dice=0.5):
    return ev.EpochEnd(epoch=i, epochs=3, train_loss=1.0, valid_loss=1.0, dice=(1.0, dice), dice_mean=dice,
                       seconds=1.0, is_best=True)


def test_the_event_log_keeps_early_events_and_skips_progress(tmp_path):
    log = EventLog()
    log(ev.Progress(1, 2, "loading"))
    log(ev.WarningEvent("before the folder"))
    log.open(tmp_path)
    log(epoch(0))
    log.close()
    log(epoch(1))  # after close: dropped
    names = [json.loads(line)["event"] for line in (tmp_path / EVENTS).read_text().splitlines()]
    assert names == ["WarningEvent", "EpochEnd"]


def test_a_finished_run_is_replayed_from_its_log(trained_run):
    final, events = trained_run
    seen = []
    result = FollowSession(final.run_dir, poll_s=0.01).run(None, seen.append)
    assert isinstance(result, ev.Finished) and result.best_dice == pytest.approx(final.best_dice)
    assert [e.epoch for e in seen if isinstance(e, ev.EpochEnd)] == list(range(TRAIN_EPOCHS))
    assert sum(isinstance(e, ev.BatchEnd) for e in seen) == sum(isinstance(e, ev.BatchEnd) for e in events)
    assert sum(isinstance(e, ev.Preview) for e in seen) == TRAIN_EPOCHS  # images travel too


def test_a_growing_log_is_followed_line_by_line_until_stopped(tmp_path):
    path = tmp_path / EVENTS
    path.write_text(to_json(epoch(0, 0.2)) + "\n" + to_json(ev.Finished(str(tmp_path), 0, 0.2, 1)) + "\n"
                    + to_json(ev.Started("cpu", "CPU", False, False, (), ("bg", "fg"), 4, 2, 3, 5, str(tmp_path),
                                         1e-4, 1e-3)) + "\n")
    follower, seen = FollowSession(tmp_path, poll_s=0.01), []
    worker = threading.Thread(target=lambda: seen.append(("final", follower.run(None, seen.append))))
    worker.start()
    with open(path, "a") as f:  # an epoch written in two pieces: the half line waits for its end
        line = to_json(epoch(1, 0.4))
        f.write(line[:20])
        f.flush()
        time.sleep(0.2)
        f.write(line[20:] + "\n")
        f.flush()
    deadline = time.time() + 10
    while not any(isinstance(e, ev.EpochEnd) for e in seen) and time.time() < deadline:
        time.sleep(0.01)
    follower.cancel()
    worker.join(10)
    assert [type(e).__name__ for e in seen[:2]] == ["Started", "EpochEnd"]  # the last attempt only
    final = seen[-1][1]
    assert isinstance(final, ev.Cancelled) and final.epochs_done == 2 and final.best_dice == pytest.approx(0.4)
    assert any(isinstance(e, ev.WarningEvent) and "goes on" in e.message for e in seen[:-1])


def test_launch_commands():
    one = launch_command("c.json", 1, python="py")
    assert one == ["py", "-m", "segstudio", "train", "--config", "c.json", "--events", "jsonl"]
    two = launch_command("c.json", 2, resume="/runs/a", python="py")
    assert two[:6] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    assert two[-5:] == ["train", "--resume", "/runs/a", "--events", "jsonl"]


@pytest.mark.slow
def test_a_run_in_torchrun_processes_reports_and_stops_like_one_in_a_thread(sample_dirs, tmp_path):
    images, masks = sample_dirs
    cfg = tiny_config(tmp_path, epochs=3, bs=4, size=32)
    cfg.data.images, cfg.data.masks = str(images), str(masks)
    session, seen = ProcessSession(processes=2, env={"OMP_NUM_THREADS": "1"}), []

    def on_event(e):
        seen.append(e)
        if isinstance(e, ev.EpochEnd):
            session.cancel()  # Ctrl-C for torchrun: every rank stops at the same batch
    final = session.run(cfg, on_event)
    assert isinstance(final, ev.Cancelled), final
    assert final.epochs_done in (1, 2) and Path(final.run_dir).is_dir()
    started = next(e for e in seen if isinstance(e, ev.Started))
    assert started.run_dir == final.run_dir and started.n_train + started.n_valid == 40
    assert sum(isinstance(e, ev.Started) for e in seen) == 1  # rank 0 alone reports
    assert any(isinstance(e, ev.BatchEnd) for e in seen) and not math.isnan(final.best_dice)
    assert json.loads((Path(final.run_dir) / "distributed.json").read_text())["world_size"] == 2


@pytest.mark.slow
def test_a_child_that_dies_without_a_result_is_a_failure(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg.data.images = str(tmp_path / "missing")
    final = ProcessSession(processes=1).run(cfg, lambda e: None)
    assert isinstance(final, ev.Failed)  # the child's own Failed event (no such folder), relayed
    assert "missing" in final.message or "exit code" in final.message
