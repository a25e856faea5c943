"""Ctrl-C as a request to stop: the commands' long tasks check an Event and stop cleanly."""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager


@contextmanager
def ctrl_c_stops(what: str):
    """An Event the first Ctrl-C sets (the task stops cleanly at its next check; "stopping
    `what`..." on stderr); a second Ctrl-C interrupts at once. Only the main thread can take over
    SIGINT: elsewhere (a test calling a command) Ctrl-C keeps its usual meaning."""
    event = threading.Event()

    def on_sigint(signum, frame) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        event.set()
        print(f"\nstopping {what}...", file=sys.stderr)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main else None
    try:
        yield event
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
