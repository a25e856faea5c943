"""What a run folder holds, gathered for the report: its settings (config.json, model.json),
history (metrics.json), course (events.jsonl), data (read again from the folders the run used)
and validation scores (metrics_per_case.csv and calibration.json when the run folder holds them,
else its validation cases predicted now), with what is missing and why."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..config import TrainConfig
from ..data import load_dataset
from ..data.report import DatasetReport
from ..errors import DataError, SegstudioError
from ..evaluation.evaluate import CSV_NAME, SUMMARY_NAME
from ..inference.predictor import Predictor
from ..model.device import device_name
from ..runs import MODEL_FILE, MODEL_META, read_metrics
from ..training.event_log import EVENTS
from .validation import (CALIBRATION_NAME, KEEP, ValidationScores, case_means, read_calibration, read_rows,
                         read_tolerance, score_validation)
from ..tasks import ProgressFn, StopFn

OUTCOMES = ("Finished", "Cancelled", "Failed")


@dataclass
class RunReport:
    run_dir: Path
    config: dict | None = None            # config.json
    meta: dict | None = None              # model.json
    history: list[dict] = field(default_factory=list)  # metrics.json: one row per epoch
    started: dict | None = None           # events.jsonl's Started event
    outcome: dict | None = None           # its last Finished, Cancelled or Failed event
    warnings: list[str] = field(default_factory=list)  # its warnings, in order
    dataset: DatasetReport | None = None  # the data as read now from the run's folders
    scores: ValidationScores | None = None
    rows_from: str = ""                   # where the per-case table comes from
    calibration_from: str = ""
    device: str = ""                      # the device that predicted for this report
    versions: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # what the report lacks, and why
    created: str = ""

    @property
    def codes(self) -> list[str]:
        return list((self.meta or {}).get("codes") or (self.started or {}).get("codes") or [])


def gather(run_dir: str | Path, progress: ProgressFn | None = None, should_stop: StopFn | None = None,
           device: str = "auto", tolerance_mm: float = 1.0, predict: bool = True) -> RunReport:
    """Everything the report shows about the run in `run_dir`; what cannot be had is listed in
    `missing`. `predict`: predict the validation cases for the pictures and calibration (and
    for the metrics when the run folder has no metrics_per_case.csv)."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise SegstudioError(f"Run folder not found: {run_dir}")
    found = [name for name in ("config.json", MODEL_META, "metrics.json", EVENTS) if (run_dir / name).is_file()]
    if not found:
        raise SegstudioError(f"{run_dir} is not a segstudio run folder (it has no config.json, {MODEL_META}, "
                             f"metrics.json or {EVENTS})")
    report = RunReport(run_dir, created=time.strftime("%Y-%m-%d %H:%M"), versions=versions())
    report.config = _json(run_dir / "config.json", report.missing, "config.json: the settings and data folders "
                          "of the run are not known")
    report.meta = _json(run_dir / MODEL_META, report.missing, f"{MODEL_META}: the run saved no model (it stops "
                        "before its first finished epoch, or the file was removed)")
    report.history, _ = read_metrics(run_dir)
    if not report.history:
        report.missing.append("metrics.json: no learning curves (the run has no finished epoch, or predates "
                              "metrics.json)")
    _read_events(run_dir, report)
    _validation(report, progress, should_stop or (lambda: False), device, tolerance_mm, predict)
    return report


def versions() -> dict[str, str]:
    """The versions of segstudio, Python, PyTorch and fastai, and the system, for the report."""
    import fastai
    import torch

    return {"segstudio": __version__, "Python": platform.python_version(), "PyTorch": torch.__version__,
            "fastai": fastai.__version__, "System": f"{platform.system()} {platform.release()} ({platform.machine()})"}


def _validation(report: RunReport, progress, stop: StopFn, device: str, tolerance_mm: float, predict: bool) -> None:
    """The per-case rows, pictures and calibration: from the run folder's files where it has
    them, else predicted now."""
    run_dir = report.run_dir
    rows = calibration = None
    if (run_dir / CSV_NAME).is_file():
        try:
            rows = read_rows(run_dir / CSV_NAME)
            report.rows_from = f"read from {CSV_NAME} in the run folder"
            tolerance_mm = read_tolerance(run_dir / SUMMARY_NAME, tolerance_mm)
        except DataError as e:
            report.missing.append(f"{CSV_NAME}: {e}; the cases are scored again")
    if (run_dir / CALIBRATION_NAME).is_file():
        calibration = read_calibration(run_dir / CALIBRATION_NAME)
        report.calibration_from = f"{CALIBRATION_NAME} in the run folder" if calibration else ""
    scores = ValidationScores(rows or [], calibration=calibration, tolerance_mm=tolerance_mm)
    report.scores = scores
    why = _cannot_predict(report, predict)
    if why:
        _missing_validation(report, why)
        return
    try:
        progress = progress or (lambda *a: None)
        progress(0, 0, "Loading the model")
        predictor = Predictor.load(run_dir, device=device)
        report.device = device_name(predictor.device)
        data, report.dataset = load_dataset(TrainConfig.load(run_dir / "config.json").data, predictor.size,
                                            progress=progress, should_stop=stop)
        pictured = None
        if rows is not None and calibration is not None:  # only the pictures are missing
            ranked = [c for c, m in case_means(rows).items() if m == m]  # worst first, NaN left out
            pictured = set(ranked[:KEEP] + ranked[-KEEP:])
        fresh = score_validation(run_dir, progress, stop, predictor=predictor, dataset=data,
                                 tolerance_mm=tolerance_mm, cases=pictured, calibrate=calibration is None)
    except (SegstudioError, OSError, ValueError) as e:
        _missing_validation(report, f"the validation cases could not be predicted: {e}")
        return
    if rows is None:
        scores.rows = fresh.rows
        report.rows_from = f"scored now: the run's best model predicted them on {report.device}"
        scores.scans = fresh.scans
    else:
        scores.scans = any(r.volume_unit == "mL" for r in rows)
    scores.worst, scores.best, scores.problems = fresh.worst, fresh.best, fresh.problems
    if not (fresh.worst or fresh.best) and scores.rows:
        report.missing.append("Pictures of the worst and best cases: none of the scored cases has foreground "
                              "in truth or prediction, or none is among the run's validation cases now")
    if calibration is None and fresh.calibration is not None:
        scores.calibration = fresh.calibration
        report.calibration_from = (f"{fresh.calibration.samples:,} pixels sampled from the validation "
                                   "predictions made now")


def _cannot_predict(report: RunReport, predict: bool) -> str:
    if not predict:
        return "the validation cases were not predicted (asked not to)"
    if report.config is None:
        return "config.json is missing, so the run's data is not known"
    if not str((report.config.get("data") or {}).get("images", "")).strip():
        return "config.json names no image folder (the run was given its data in memory)"
    if not (report.run_dir / MODEL_FILE).is_file() or report.meta is None:
        return "the run has no trained model"
    return ""


def _missing_validation(report: RunReport, why: str) -> None:
    if not report.scores.rows:
        report.missing.append(f"Per-case metrics: {why}")
    report.missing.append(f"Pictures of the worst and best cases: {why}")
    if report.scores.calibration is None:
        report.missing.append(f"Calibration (reliability diagram, ECE): {why}")


def _read_events(run_dir: Path, report: RunReport) -> None:
    """The Started event, the last outcome and the warnings of events.jsonl."""
    try:
        with open(run_dir / EVENTS, encoding="utf-8", errors="replace") as f:
            for line in f:
                if '"BatchEnd"' in line[:40] or '"Preview"' in line[:40]:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                kind = event.get("event") if isinstance(event, dict) else None
                if kind == "Started":
                    report.started, report.outcome = event, None
                elif kind in OUTCOMES:
                    report.outcome = event
                elif kind == "WarningEvent" and event.get("message") not in report.warnings:
                    report.warnings.append(str(event.get("message")))
    except OSError:
        report.missing.append(f"{EVENTS}: the device the run trained on and how it ended are not known")


def _json(path: Path, missing: list[str], why: str) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        missing.append(why)
        return None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        missing.append(f"{path.name} cannot be read ({e})")
        return None
    if not isinstance(value, dict):
        missing.append(f"{path.name} does not hold settings")
        return None
    return value
