"""A training run in a child process: `segstudio train --events jsonl`, alone or under torchrun
(several GPUs of this machine), with its event lines turned back into events. It has the same
`run`/`cancel` as TrainingSession, so the app's TrainWorker drives it and the Train area shows it
unchanged; a crash of the child (a driver fault, the OOM killer) ends the run, not the app.

subprocess rather than Qt's QProcess: the core stays Qt-free and testable headless, and the
TrainWorker's thread already turns events into Qt signals.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from . import events as ev
from .event_json import from_json
from .event_log import TERMINAL

STDERR_LINES = 30  # the child's last stderr lines, shown when it ends without a result


def launch_command(config_path: str | Path, processes: int, resume: str = "", python: str = sys.executable) -> list[str]:
    """`segstudio train` for a saved config: one process, or torchrun with `processes` on this machine."""
    if processes > 1:
        head = [python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                "-m", "segstudio"]
    else:
        head = [python, "-m", "segstudio"]
    tail = ["--resume", str(resume)] if resume else ["--config", str(config_path)]
    return head + ["train", *tail, "--events", "jsonl"]


class ProcessSession:
    """Runs a TrainConfig in a child process (`processes` > 1: under torchrun)."""

    def __init__(self, processes: int = 1, env: dict | None = None):
        self.processes = processes
        self.env = env
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stop = False

    def cancel(self) -> None:
        """Ask the child to stop as Ctrl-C would: it finishes its batch and reports Cancelled
        (torchrun passes the signal on to every rank, and they stop at the same batch)."""
        with self._lock:
            self._stop = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.CTRL_BREAK_EVENT if sys.platform == "win32" else signal.SIGINT)

    def run(self, config, on_event, dataset=None, resume: str = ""):
        """Start the child, relay its events, return its final one (Failed when it ended without)."""
        with tempfile.TemporaryDirectory(prefix="segstudio-run-") as tmp:
            path = Path(tmp) / "config.json"
            path.write_text(config.to_json(), encoding="utf-8")
            flags = subprocess.CREATE_NEW_PROCESS_GROUP if sys.platform == "win32" else 0
            env = {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}
            with self._lock:
                if self._stop:
                    return self._emit(on_event, ev.Cancelled("", 0, float("nan")))
                try:
                    self._proc = subprocess.Popen(launch_command(path, self.processes, resume), stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                                  errors="replace", env=env, creationflags=flags)
                except OSError as exc:
                    return self._emit(on_event, ev.Failed(f"The training process could not start: {exc}"))
            proc = self._proc
            tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
            reader = threading.Thread(target=lambda: tail.extend(proc.stderr), daemon=True)
            reader.start()
            final = None
            for line in proc.stdout:
                try:
                    event = from_json(line)
                except ValueError:
                    continue  # a library's print
                on_event(event)
                if isinstance(event, TERMINAL) and final is None:
                    final = event
            code = proc.wait()
            reader.join(5)
        if final is not None:
            return final
        return self._emit(on_event, ev.Failed(
            f"The training process ended without a result (exit code {code}).",
            advice="Its last messages:\n" + "".join(tail)[-2000:] if tail else ""))

    @staticmethod
    def _emit(on_event, event):
        on_event(event)
        return event
