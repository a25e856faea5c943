"""Run folders: config.json, metrics.csv/json, model.pth + model.json.

Every file is written atomically (temporary file + rename), so a crash or Ctrl-C never leaves a
half-written file behind.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

from .files import write_atomic

MODEL_FILE = "model.pth"
MODEL_META = "model.json"
SPLIT_FILE = "split.json"  # the split groups (patients, scans, cases) that trained and validated
CHECKPOINT = "checkpoint.pth"  # model, optimizer and generators after every epoch, until the run finishes


def default_runs_dir() -> Path:
    """The user's runs folder (platform data dir / segstudio / runs)."""
    import platformdirs

    return platformdirs.user_data_path("segstudio", appauthor=False) / "runs"


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, allow_nan=True))


def new_run_dir(out_dir: str | Path, name: str = "", exact: bool = False) -> Path:
    """Create a fresh, uniquely named run folder under `out_dir`; `exact`: named `name` itself
    (a fold of a fold set), an earlier attempt there without a model moved aside, never removed."""
    root = Path(out_dir) if out_dir else default_runs_dir()
    name = re.sub(r"[^\w.\-]+", "_", name).strip("._")  # one folder, never a path
    if exact and name:
        path = root / name
        if path.exists():
            if (path / MODEL_FILE).exists():
                raise FileExistsError(f"{path} already holds a trained model")
            path.rename(root / f"{name}.failed-{time.strftime('%Y%m%d-%H%M%S')}")
        path.mkdir(parents=True)
        return path
    stem = time.strftime("%Y%m%d-%H%M%S") + (f"-{name}" if name else "")
    for i in range(1000):
        path = root / (stem if i == 0 else f"{stem}-{i}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run folder in {root}")


class MetricsLog:
    """Per-epoch metrics, rewritten as metrics.csv and metrics.json after every epoch."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.rows: list[dict[str, Any]] = []

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self._write()

    def reset(self, rows: list[dict[str, Any]]) -> None:
        """Start from `rows` (a resumed run's epochs so far), rewriting the files."""
        self.rows = [dict(r) for r in rows]
        if self.rows:
            self._write()

    def _write(self) -> None:
        write_json(self.run_dir / "metrics.json", self.rows)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(self.run_dir / "metrics.csv", buf.getvalue())


def save_model(run_dir: Path, state_dict: dict, meta: dict[str, Any]) -> None:
    """Save weights (state dict only, loadable with weights_only=True) and their metadata."""
    import torch

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buf)
    write_atomic(Path(run_dir) / MODEL_FILE, buf.getvalue())
    write_json(Path(run_dir) / MODEL_META, meta)


def read_metrics(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(metrics.json rows, class names from model.json): a run's history; ([], []) when missing."""
    run_dir = Path(run_dir)
    try:
        rows = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        rows = []
    try:
        codes = list(json.loads((run_dir / MODEL_META).read_text(encoding="utf-8"))["codes"])
    except (OSError, ValueError, KeyError, TypeError):
        codes = []
    return (rows if isinstance(rows, list) else []), codes
