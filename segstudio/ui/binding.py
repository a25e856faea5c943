"""Config dataclass fields bound to widgets by name, as glue's autoconnect_callbacks_to_qt does.

A field `epochs` is edited by the child widget named `<kind>_epochs`, kind being one of KINDS;
the widget's type says how its value is read and written. A new config field then needs one
widget with the right name, not four hand-written copies. Fields whose widget shows another unit
(a percentage for a fraction, comma-separated text for a list) pass a `Convert`.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any, Callable

from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit,
                               QSpinBox, QWidget)
from superqt.utils import signals_blocked

KINDS = ("value", "bool", "combo", "path", "text")


@dataclass(frozen=True)
class Convert:
    """How a field's value is shown (to_widget) and read back (from_widget)."""

    to_widget: Callable[[Any], Any]
    from_widget: Callable[[Any], Any]


PERCENT = Convert(lambda v: round(float(v) * 100), lambda v: float(v) / 100)
COMMA_LIST = Convert(lambda v: ", ".join(v), lambda v: [s.strip() for s in str(v).split(",") if s.strip()])


class Binding:
    """The widgets under `root` that edit the fields of dataclass `cls`."""

    def __init__(self, root: QWidget, cls, convert: dict[str, Convert] | None = None,
                 exclude: tuple[str, ...] = ()):
        self.convert = convert or {}
        self.widgets: dict[str, QWidget] = {}
        for f in fields(cls):
            if f.name in exclude:
                continue
            for kind in KINDS:
                w = root.findChild(QWidget, f"{kind}_{f.name}")
                if w is not None:
                    self.widgets[f.name] = w
                    break

    def read(self, obj):
        """A copy of `obj` with every bound field taken from its widget."""
        values = {}
        for name, w in self.widgets.items():
            value = widget_value(w)
            if name in self.convert:
                value = self.convert[name].from_widget(value)
            current = getattr(obj, name)
            values[name] = type(current)(value) if isinstance(current, Enum) else value
        return replace(obj, **values)

    def write(self, obj) -> None:
        """Show `obj`'s fields in their widgets, without emitting the widgets' change signals."""
        with ExitStack() as quiet:
            for w in self.widgets.values():
                quiet.enter_context(signals_blocked(w))
            for name, w in self.widgets.items():
                value = getattr(obj, name)
                if name in self.convert:
                    value = self.convert[name].to_widget(value)
                set_widget_value(w, value.value if isinstance(value, Enum) else value)

    def on_change(self, slot: Callable[[], None]) -> None:
        """Call `slot` after any bound widget is edited."""
        for w in self.widgets.values():
            if isinstance(w, QCheckBox):
                w.toggled.connect(lambda *_: slot())
            elif isinstance(w, QComboBox):
                (w.currentTextChanged if w.isEditable() else w.currentIndexChanged).connect(lambda *_: slot())
            elif isinstance(w, QAbstractSpinBox):
                w.valueChanged.connect(lambda *_: slot())
            elif isinstance(w, QLineEdit):
                w.editingFinished.connect(slot)


def widget_value(w: QWidget):
    if isinstance(w, QCheckBox):
        return w.isChecked()
    if isinstance(w, (QSpinBox, QDoubleSpinBox)):
        return w.value()
    if isinstance(w, QComboBox):
        data = w.currentData()
        return w.currentText() if data is None or w.isEditable() else data
    if isinstance(w, QLineEdit):
        return w.text().strip()
    raise TypeError(f"cannot read a {type(w).__name__}")


def set_widget_value(w: QWidget, value) -> None:
    if isinstance(w, QCheckBox):
        w.setChecked(bool(value))
    elif isinstance(w, (QSpinBox, QDoubleSpinBox)):
        w.setValue(value)
    elif isinstance(w, QComboBox):
        i = w.findData(value)
        if i < 0:
            i = w.findText(str(value))
        if i < 0 and (w.isEditable() or w.itemData(0) is None):  # a text combo: a custom value
            w.addItem(str(value))
            i = w.count() - 1
        if i >= 0:
            w.setCurrentIndex(i)
    elif isinstance(w, QLineEdit):
        w.setText(str(value))
    else:
        raise TypeError(f"cannot set a {type(w).__name__}")
