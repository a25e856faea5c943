"""The background checkpoint writer: the newest state wins, errors reach the training thread,
and no thread is left behind."""

import errno
import threading

import pytest

from segstudio.training import checkpoint
from segstudio.training.checkpoint import CheckpointWriter


def writer_threads():
    return [t for t in threading.enumerate() if t.name == "segstudio-checkpoint"]


def test_states_handed_over_during_a_write_coalesce_to_the_newest(tmp_path, monkeypatch):
    entered, release, written = threading.Event(), threading.Event(), []

    def slow_write(run_dir, payload):
        entered.set()
        release.wait(10)
        written.append(payload["epochs_done"])
    monkeypatch.setattr(checkpoint, "write_checkpoint", slow_write)
    writer = CheckpointWriter()
    writer.submit(tmp_path, {"epochs_done": 1})
    assert entered.wait(10)
    for epoch in (2, 3):  # 1 is being written while 2 and 3 come: 2 is dropped
        writer.submit(tmp_path, {"epochs_done": epoch})
    release.set()
    writer.wait()
    assert written == [1, 3]
    writer.submit(tmp_path, {"epochs_done": 4})  # a later one starts a thread again
    writer.wait()
    assert written == [1, 3, 4] and not writer_threads()


def test_a_failed_write_is_raised_in_the_training_thread(tmp_path, monkeypatch):
    def full(run_dir, payload):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(checkpoint, "write_checkpoint", full)
    writer = CheckpointWriter()
    writer.submit(tmp_path, {"epochs_done": 1})
    with pytest.raises(OSError, match="No space"):
        writer.wait()
    with pytest.raises(OSError):  # and at the next epoch's hand-over: the run stops
        writer.submit(tmp_path, {"epochs_done": 2})
    writer.wait(raise_error=False)
    assert not writer_threads()
