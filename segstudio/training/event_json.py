"""The events' JSON form: one object per event, {"event": "EpochEnd", ...its fields}, so that a run
in another process (`segstudio train --events jsonl`, torchrun, a cluster job) can be followed by
the same code that follows a run in a thread. Images (previews) travel as base64 PNG; NaN is
written as JSON's NaN token, which Python's json reads back."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import fields

import numpy as np
from PIL import Image

from . import events as ev

TYPES = {cls.__name__: cls for cls in (ev.Progress, ev.Started, ev.PhaseChanged, ev.BatchEnd, ev.EpochEnd,
                                       ev.Preview, ev.WarningEvent, ev.Finished, ev.Cancelled, ev.Failed,
                                       ev.LRFound)}


def to_json(event) -> str:
    """One line of JSON for an event."""
    return json.dumps({"event": type(event).__name__, **{f.name: _plain(getattr(event, f.name))
                                                          for f in fields(event)}}, allow_nan=True)


def from_json(text: str):
    """The event a `to_json` line describes; ValueError for anything else."""
    d = json.loads(text)
    cls = TYPES.get(d.pop("event", None)) if isinstance(d, dict) else None
    if cls is None:
        raise ValueError(f"not a segstudio event: {text[:80]!r}")
    values = {}
    for f in fields(cls):
        if f.name not in d:
            continue
        v = d[f.name]
        if f.name == "groups":
            v = tuple(ev.GroupInfo(**g) for g in v)
        elif isinstance(v, list):
            v = tuple(_array(x) if isinstance(x, dict) and "png" in x else x for x in v)
        values[f.name] = v
    return cls(**values)


def _plain(value):
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(value.astype(np.uint8))).save(buf, format="PNG")
        return {"png": base64.b64encode(buf.getvalue()).decode("ascii")}
    if isinstance(value, ev.GroupInfo):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _array(d: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(d["png"]))))
