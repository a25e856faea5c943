"""`segstudio --self-test` reports a broken step and exits 1 (CI runs the passing case from the install)."""

from segstudio.training.session import TrainingSession
from segstudio.ui.self_test import run_self_test


def test_self_test_fails_when_training_fails(monkeypatch, capsys):
    def broken_run(self, config, emit, dataset=None):
        raise RuntimeError("CUDA kernel image not found")

    monkeypatch.setattr(TrainingSession, "run", broken_run)
    assert run_self_test() == 1
    out = capsys.readouterr().out
    assert "ok    load sample" in out
    assert "FAIL  train: the run ended with Failed: RuntimeError: CUDA kernel image not found" in out
    assert "self-test passed" not in out
