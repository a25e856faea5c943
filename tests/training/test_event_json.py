"""The events' JSON form: every event type survives a round trip, and `train --events jsonl`
prints a run as lines another process can turn back into the same events."""

import math

import numpy as np
import pytest

from segstudio.cli.main import main
from segstudio.training import events as ev
from segstudio.training.event_json import TYPES, from_json, to_json

GROUPS = (ev.GroupInfo("encoder 1", 10, 1e-4, True), ev.GroupInfo("head", 5, 1e-3, False))
EXAMPLES = [
    ev.Progress(3, 10, "Reading a.png"),
    ev.Started("cpu", "CPU", False, False, GROUPS, ("background", "liver"), 8, 2, 3, 4, "/runs/r", 1e-4, 1e-3),
    ev.Started("cpu", "CPU", False, False, GROUPS, ("background", "liver"), 8, 2, 3, 4, "/runs/r", 1e-4, 1e-3,
               parent_run="/runs/parent"),  # a continued run: whose weights it starts from
    ev.PhaseChanged("unfrozen", GROUPS),
    ev.BatchEnd(0, 7, 12, 0.5, (1e-4, 1e-3)),
    ev.EpochEnd(1, 3, 0.4, 0.3, (0.99, float("nan")), float("nan"), 2.5, True),
    ev.Preview(0, ("a", "b"), (np.arange(12, dtype=np.uint8).reshape(3, 4), np.zeros((3, 4, 3), np.uint8)),
               (np.ones((3, 4), np.uint8),) * 2, (np.eye(3, 4, dtype=np.uint8),) * 2),
    ev.WarningEvent("careful"),
    ev.Finished("/runs/r", 2, 0.9, 3),
    ev.Cancelled("", 0, float("nan")),
    ev.Failed("out of memory", "lower the batch size", "/runs/r"),
    ev.LRFound((1e-5, 1e-4), (1.0, 0.5), 1e-5, 1e-4, {"valley": 2e-5}),
]


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, tuple):
        return isinstance(b, tuple) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_survives_a_round_trip(event):
    line = to_json(event)
    assert "\n" not in line
    back = from_json(line)
    assert type(back) is type(event)
    for name in vars(event):
        assert same(getattr(event, name), getattr(back, name)), name


def test_the_examples_cover_every_event_type():
    assert {type(e).__name__ for e in EXAMPLES} == set(TYPES)


def test_something_else_is_refused():
    with pytest.raises(ValueError):
        from_json('{"event": "Nope"}')


@pytest.mark.slow
def test_train_prints_json_lines(tmp_path, capsys):
    code = main(["train", "--demo", "--epochs", "1", "--size", "32", "--input", "resize", "--bs", "8", "--no-pretrained", "--device", "cpu",
                 "--out", str(tmp_path), "--events", "jsonl"])
    assert code == 0
    events = [from_json(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [type(e).__name__ for e in events]
    # after Finished only the scoring of the validation cases speaks (Progress, warnings)
    end = kinds.index("Finished")
    assert set(kinds[end + 1:]) <= {"Progress", "WarningEvent"} and "Progress" in kinds[end + 1:]
    assert "Started" in kinds and kinds.count("EpochEnd") == 1
    assert kinds.index("Started") < kinds.index("BatchEnd") < kinds.index("EpochEnd")
    preview = next(e for e in events if isinstance(e, ev.Preview))
    assert preview.images[0].dtype == np.uint8 and preview.preds[0].shape == preview.targets[0].shape
