"""Worker threads run below the GUI thread's CPU priority."""

import os
import sys
import threading

import pytest

from segstudio.workers import TaskWorker


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux-only")
def test_task_worker_thread_is_niced(qtbot):
    seen = {}

    def fn(progress, should_stop):
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return 1

    worker = TaskWorker(fn, "nice")
    with qtbot.waitSignal(worker.result, timeout=10000):
        worker.start()
    worker.wait(5000)
    gui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen["nice"] > gui or seen["nice"] == 19
