"""The Qt binding installed is one the app can run on for hours."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    changed = Signal(int)


def test_emitting_signals_keeps_python_s_true_alive(qapp):
    """PySide6 6.12.0 dropped a reference to True on every emit: after ~45,000 emits (minutes of
    training plots) the process aborted with "bool_dealloc". pyproject.toml excludes it."""
    emitter, seen = _Emitter(), []
    emitter.changed.connect(seen.append)
    before = sys.getrefcount(True)
    for i in range(200):
        emitter.changed.emit(i)
    assert len(seen) == 200
    assert sys.getrefcount(True) >= before - 5  # a leak loses one per emit
