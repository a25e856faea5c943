"""The app's shared state: what the panels read and watch instead of reaching into each other.

Modelled on glue's state objects: plain attributes that call their watchers when they change, no
Qt (so the state is tested without a display). Panels write the parts they own and watch the
rest; the main window only builds and connects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from segstudio.config import DataConfig, TrainConfig

Watcher = Callable[[Any], None]


class Field:
    """An attribute whose changes are announced to the owner's watchers."""

    def __init__(self, default_factory: Callable[[], Any] = lambda: None):
        self.default_factory = default_factory

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        if self.name not in obj.__dict__:
            obj.__dict__[self.name] = self.default_factory()
        return obj.__dict__[self.name]

    def __set__(self, obj, value) -> None:
        old = self.__get__(obj)
        obj.__dict__[self.name] = value
        if not _same(old, value):
            obj.notify(self.name, value)


def _same(a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, (str, int, float, bool, tuple, DataConfig, TrainConfig, RunRef)) and type(a) is type(b):
        return a == b
    return False


class Observable:
    """Watchers per attribute name; `watch` returns a function that removes the watcher."""

    def __init__(self):
        self._watchers: dict[str, list[Watcher]] = {}

    def watch(self, name: str, callback: Watcher) -> Callable[[], None]:
        self._watchers.setdefault(name, []).append(callback)
        return lambda: self._watchers[name].remove(callback)

    def notify(self, name: str, value) -> None:
        for callback in list(self._watchers.get(name, ())):
            callback(value)


@dataclass(frozen=True)
class RunRef:
    """A run folder, with the config it was started with when this app started it."""

    run_dir: str
    config: TrainConfig | None = None


@dataclass(frozen=True)
class Message:
    area: str   # "data", "train", "review" or "app"
    level: str  # "info", "warning" or "error"
    text: str   # first line: the message; further lines: details
    action: tuple[str, Callable[[], None]] | None = None  # (button label, what it does)
    time: float = field(default_factory=time.time)


class AppState(Observable):
    """Everything more than one panel needs to know."""

    data_config = Field(DataConfig)        # the Data area's folders and reading settings
    train_config = Field(TrainConfig)      # the Train area's settings (its `data` is not used)
    dataset = Field()                      # the loaded SegDataset, or None
    report = Field()                       # its DatasetReport (also after a failed load), or None
    dataset_key = Field()                  # (DataConfig, size) the dataset was loaded with
    environment = Field()                  # device probe: {"device_kind", "device_name", "pretrained"}
    training = Field(lambda: "")           # "train" or "find_lr" while one runs, else ""
    run = Field()                          # RunRef of the run the Review should show
    message = Field()                      # the latest Message (every one is also in `log`)

    def __init__(self):
        super().__init__()
        self.log: list[Message] = []

    def dataset_for(self, data: DataConfig, size: int):
        """The loaded dataset when it was loaded with exactly these settings, else None."""
        if self.dataset is not None and self.dataset_key == (data, int(size)):
            return self.dataset
        return None

    def set_dataset(self, dataset, report, key) -> None:
        self.dataset_key = key
        self.report = report
        self.dataset = dataset

    def post(self, area: str, level: str, text: str,
             action: tuple[str, Callable[[], None]] | None = None) -> None:
        """A message for the user from one area (shown there, kept in the log)."""
        message = Message(area, level, text, action)
        self.log.append(message)
        self.message = message
