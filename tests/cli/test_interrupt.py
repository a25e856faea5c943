"""Ctrl-C during a command's long task: the first asks it to stop, a second interrupts."""

import os
import signal

import pytest

from segstudio.cli.interrupt import ctrl_c_stops


def test_the_first_ctrl_c_sets_the_stop_the_second_interrupts_and_the_handler_is_given_back(capsys):
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_stops("the test") as stop:
            assert not stop.is_set()
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.is_set()  # asked to stop: no exception yet
            assert "stopping the test..." in capsys.readouterr().err
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is previous


def test_evaluate_stopped_by_ctrl_c_writes_nothing(tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from segstudio.cli.main import main
    from segstudio.evaluation import evaluate

    for sub in ("pred", "truth"):
        (tmp_path / sub).mkdir()
        for i in range(3):
            Image.fromarray((np.arange(64 * 64).reshape(64, 64) % 2 * 255).astype(np.uint8)).save(
                tmp_path / sub / f"case{i}.png")
    real = evaluate.evaluate_folders

    def ctrl_c_then_evaluate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # before the first case: its stop check sees it
        return real(*args, **kwargs)
    monkeypatch.setattr(evaluate, "evaluate_folders", ctrl_c_then_evaluate)
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(tmp_path / "truth")]) == 130
    err = capsys.readouterr().err
    assert "stopping scoring..." in err and "cancelled; nothing was written" in err  # a clean stop, not an interrupt
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["case0.png", "case1.png", "case2.png"]
