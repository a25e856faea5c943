"""`segstudio --self-test` reports a broken step and exits 1, never hangs (CI runs the passing case
from the install, and tests/package/test_packaging.py from the wheel)."""

import pytest

from segstudio.training.session import TrainingSession
from segstudio.ui import self_test
from segstudio.ui.panels.review_panel import ReviewPanel


@pytest.mark.slow
def test_fails_when_training_fails(monkeypatch, capsys):
    def broken_run(self, config, emit, dataset=None):
        raise RuntimeError("CUDA kernel image not found")

    monkeypatch.setattr(TrainingSession, "run", broken_run)
    assert self_test.run_self_test() == 1
    out = capsys.readouterr().out
    assert "ok    load sample" in out
    assert "FAIL  train: RuntimeError: CUDA kernel image not found" in out
    assert "self-test passed" not in out


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_timeout_mid_run_stops_the_run_and_exits(monkeypatch, capsys):
    """Closing the window while a run is still stopping must not ask "Stop training?" (nobody answers)."""
    monkeypatch.setitem(self_test.TIMEOUT_S, "train", 0.5)
    assert self_test.run_self_test() == 1
    assert "FAIL  train: did not finish within 0.5 s" in capsys.readouterr().out


@pytest.mark.slow
def test_an_exception_in_a_slot_fails_the_step(monkeypatch, capsys):
    def broken_slot(self, result):
        raise ValueError("mask writer broke")

    monkeypatch.setattr(ReviewPanel, "_on_predicted", broken_slot)
    assert self_test.run_self_test() == 1
    out = capsys.readouterr().out
    assert "ok    review" in out and "FAIL  predict: ValueError: mask writer broke" in out
