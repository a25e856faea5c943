"""Scoring a folder of predictions against a folder of ground truth, case by case: pairing by
case name, per-class metrics (surface.py) in worker processes, `metrics_per_case.csv` and
`summary.json`."""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.discovery import is_supported
from ..data.layouts import _class_names
from ..data.masks import read_class_names
from ..data.pairing import MASK_SUFFIX
from ..errors import Cancelled, DataError
from ..files import write_atomic
from ..io.registry import volume_stem, volume_suffix
from .labels import on_one_grid, read_labels
from .surface import ClassMetrics, label_metrics
from ..tasks import ProgressFn, StopFn

CSV_NAME, SUMMARY_NAME = "metrics_per_case.csv", "summary.json"
COLUMNS = ["case", "class", "class_name", "dice", "nsd", "hd95", "assd", "volume_pred", "volume_truth",
           "empty", "distance_unit", "volume_unit"]
METRICS = ("dice", "nsd", "hd95", "assd")
PICTURE_SUFFIXES = ("_color", "_uncertainty")  # segstudio predict's pictures beside its masks
BOOTSTRAP = 2000  # resamples for the 95% intervals of the means
MAX_WORKERS = 8
WRITER = "segstudio evaluate"  # summary.json's "written_by": a later run may replace the file


@dataclass(frozen=True)
class MetricRow:
    """One class in one case. Distances in `distance_unit` ("mm", or "px" for image masks
    without spacing); volumes in `volume_unit` ("mL" for scans, "px" for images)."""
    case: str
    label: int
    class_name: str
    dice: float
    nsd: float
    hd95: float
    assd: float
    volume_pred: float
    volume_truth: float
    empty: str          # "both", "truth", "prediction" or ""
    distance_unit: str
    volume_unit: str


@dataclass
class EvaluationReport:
    tolerance_mm: float
    rows: list[MetricRow] = field(default_factory=list)
    summary: dict = field(default_factory=dict)           # summary.json's content
    missing_predictions: list[str] = field(default_factory=list)  # truth cases without a prediction
    missing_truth: list[str] = field(default_factory=list)        # predictions without a truth
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file or case, reason)
    written: list[Path] = field(default_factory=list)

    @property
    def cases(self) -> list[str]:
        return list(dict.fromkeys(r.case for r in self.rows))


@dataclass
class CaseResult:
    case: str
    metrics: dict[int, ClassMetrics] | None = None
    distance_unit: str = "px"
    volume_unit: str = "px"
    voxel_volume: float = 1.0           # mL (or pixels) per voxel
    names: dict[int, str] = field(default_factory=dict)
    problem: tuple[str, str] | None = None


def evaluate_folders(pred_dir: str | Path, truth_dir: str | Path, tolerance_mm: float = 1.0,
                     out_dir: str | Path | None = None, progress: ProgressFn | None = None,
                     should_stop: StopFn | None = None, workers: int | None = None) -> EvaluationReport:
    """Score every prediction in `pred_dir` against the ground truth of the same case name in
    `truth_dir` (`_mask`, `_seg`... and volume endings stripped, case-insensitive). Writes
    metrics_per_case.csv and summary.json to `out_dir` when given. `workers`: processes for
    the cases (default: one per CPU, up to 8, for scans; image masks are scored in this
    thread; 0 or 1: in this thread). DataError when a folder is missing or nothing pairs;
    Cancelled when `should_stop()` turns True. Unreadable files and mismatched pairs are
    listed in the report, never raised."""
    pred_dir, truth_dir = Path(pred_dir), Path(truth_dir)
    if not (tolerance_mm > 0 and math.isfinite(tolerance_mm)):
        raise DataError(f"the NSD tolerance must be a positive number of mm, got {tolerance_mm}")
    for what, folder in (("predictions", pred_dir), ("ground truth", truth_dir)):
        if not folder.is_dir():
            raise DataError(f"{what} folder not found: {folder}")
    if out_dir is not None:
        _check_out(Path(out_dir))
    report = EvaluationReport(tolerance_mm)
    truths = _case_files(truth_dir, report.problems, skip_pictures=False)
    preds = _case_files(pred_dir, report.problems, skip_pictures=True)
    report.missing_predictions = sorted(name for key, (name, _) in truths.items() if key not in preds)
    report.missing_truth = sorted(name for key, (name, _) in preds.items() if key not in truths)
    jobs = [(name, truths[key][1], preds[key][1]) for key, (name, _) in sorted(truths.items()) if key in preds]
    if not jobs:
        raise DataError(f"no prediction in {pred_dir} has a ground truth of the same case name in {truth_dir}")
    results = _run(jobs, tolerance_mm, progress or (lambda *a: None), should_stop or (lambda: False), workers)
    names = _class_names_of(truth_dir, results)
    labels = sorted({c for c in names if c > 0} | {c for r in results if r.metrics for c in r.metrics})
    for r in results:
        if r.problem is not None:
            report.problems.append(r.problem)
            continue
        for c in labels:
            m = r.metrics.get(c) or ClassMetrics(math.nan, math.nan, math.nan, math.nan, 0, 0)
            report.rows.append(MetricRow(r.case, c, names.get(c, f"class {c}"), m.dice, m.nsd, m.hd95, m.assd,
                                         m.voxels_pred * r.voxel_volume, m.voxels_truth * r.voxel_volume,
                                         m.empty, r.distance_unit, r.volume_unit))
    report.summary = summarise(report)
    if out_dir is not None:
        report.written = write_report(report, Path(out_dir))
    return report


def write_report(report: EvaluationReport, out_dir: Path) -> list[Path]:
    """metrics_per_case.csv and summary.json in `out_dir` (created), written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in report.rows:
        writer.writerow([r.case, r.label, r.class_name, *(_cell(getattr(r, m)) for m in METRICS),
                         _cell(r.volume_pred), _cell(r.volume_truth), r.empty, r.distance_unit, r.volume_unit])
    paths = [out_dir / CSV_NAME, out_dir / SUMMARY_NAME]
    write_atomic(paths[0], text.getvalue())
    write_atomic(paths[1], json.dumps(report.summary, indent=2) + "\n")
    return paths


def summarise(report: EvaluationReport, seed: int = 0) -> dict:
    """Per class: mean, median and bootstrap 95% interval of each metric over the cases where it
    is defined (NaN rows left out), the number of cases and of empty ones."""
    rng = np.random.default_rng(seed)
    classes = {}
    for label in sorted({r.label for r in report.rows}):
        rows = [r for r in report.rows if r.label == label]
        entry = {"name": rows[0].class_name, "cases": len(rows),
                 "empty": {k: sum(r.empty == k for r in rows) for k in ("truth", "prediction", "both")}}
        for m in METRICS:
            entry[m] = statistics([getattr(r, m) for r in rows], rng)
        classes[str(label)] = entry
    units = sorted({r.distance_unit for r in report.rows})
    return {"written_by": WRITER, "tolerance_mm": report.tolerance_mm,
            "distance_unit": units[0] if len(units) == 1 else "mixed",
            "cases": len(report.cases), "bootstrap_resamples": BOOTSTRAP, "classes": classes,
            "missing_predictions": report.missing_predictions, "missing_truth": report.missing_truth,
            "problems": [{"file": f, "reason": why} for f, why in report.problems]}


def statistics(values: list[float], rng: np.random.Generator) -> dict:
    """{n, mean, median, ci95: [low, high]} of the finite values (percentile bootstrap of the
    mean, resampling cases); None where there is no value."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if not len(x):
        return {"n": 0, "mean": None, "median": None, "ci95": None}
    means = x[rng.integers(0, len(x), (BOOTSTRAP, len(x)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"n": int(len(x)), "mean": float(x.mean()), "median": float(np.median(x)),
            "ci95": [float(low), float(high)]}


def case_key(path: Path) -> tuple[str, str]:
    """(case name, matching key): the name without its volume ending and a mask suffix."""
    name = MASK_SUFFIX.sub("", volume_stem(path))
    return name, name.casefold()


def evaluate_case(case: str, truth_path: Path, pred_path: Path, tolerance_mm: float) -> CaseResult:
    """One pair's metrics, or the problem that stopped it (never raises for a bad file)."""
    try:
        truth = read_labels(truth_path)
    except DataError as e:
        return CaseResult(case, problem=(truth_path.name, str(e)))
    try:
        pred = read_labels(pred_path)
    except DataError as e:
        return CaseResult(case, problem=(pred_path.name, str(e)))
    try:
        a, b, volume = on_one_grid(truth, pred)
        out = CaseResult(case, names={**pred.names, **truth.names})
        spacing = (1.0,) * a.ndim
        if volume is not None:
            spacing = volume.spacing
            out.distance_unit, out.volume_unit = "mm", "mL"
            out.voxel_volume = float(np.prod(spacing)) / 1000
            if a.shape[0] == 1:  # one slice: its contours, in-plane
                a, b, spacing = a[0], b[0], spacing[1:]
        out.metrics = label_metrics(a, b, spacing, tolerance_mm)
        return out
    except DataError as e:
        return CaseResult(case, problem=(case, str(e)))
    except MemoryError:
        return CaseResult(case, problem=(case, "not enough memory to score this pair"))


def _run(jobs: list[tuple[str, Path, Path]], tolerance_mm: float, progress: ProgressFn, stop: StopFn,
         workers: int | None) -> list[CaseResult]:
    """Each case's result, in the order of `jobs`."""
    if workers is None:
        scans = any(volume_suffix(t) or volume_suffix(p) or t.suffix.lower() == ".dcm" for _, t, p in jobs)
        workers = min(os.cpu_count() or 1, len(jobs), MAX_WORKERS) if scans else 1
    results: list[CaseResult | None] = [None] * len(jobs)
    progress(0, len(jobs), "Scoring")
    if workers > 1:
        try:
            _in_processes(jobs, tolerance_mm, progress, stop, workers, results)
        except BrokenProcessPool:  # e.g. a script without `if __name__ == "__main__":`
            pass                   # the cases left are scored below
    for i, job in enumerate(jobs):
        if results[i] is None:
            if stop():
                raise Cancelled()
            results[i] = evaluate_case(*job, tolerance_mm)
            progress(sum(r is not None for r in results), len(jobs), f"Scored {job[0]}")
    return results


def _in_processes(jobs: list[tuple[str, Path, Path]], tolerance_mm: float, progress: ProgressFn, stop: StopFn,
                  workers: int, results: list) -> None:
    """Fill `results` from `workers` processes (spawned: forking a process with threads, the
    GUI's, may deadlock)."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint)
    try:
        pending: dict[Future, int] = {pool.submit(evaluate_case, *job, tolerance_mm): i for i, job in enumerate(jobs)}
        while pending:
            if stop():
                raise Cancelled()
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                i = pending.pop(future)
                results[i] = future.result()
                progress(sum(r is not None for r in results), len(jobs), f"Scored {jobs[i][0]}")
    finally:  # on a stop, cases not started are dropped and running ones are not waited for
        pool.shutdown(wait=False, cancel_futures=True)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops cleanly (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _check_out(out_dir: Path) -> None:
    """DataError when `out_dir` holds a metrics_per_case.csv or summary.json that an earlier
    evaluate did not write (e.g. nnU-Net's summary.json): those are not replaced."""
    csv_path, json_path = out_dir / CSV_NAME, out_dir / SUMMARY_NAME
    try:
        if csv_path.exists() and csv_path.read_text(encoding="utf-8").split("\n", 1)[0] != ",".join(COLUMNS):
            raise DataError(f"{csv_path} exists and was not written by {WRITER}; choose another output folder")
        if json_path.exists() and json.loads(json_path.read_text(encoding="utf-8")).get("written_by") != WRITER:
            raise DataError(f"{json_path} exists and was not written by {WRITER}; choose another output folder")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        raise DataError(f"cannot tell whether {out_dir}'s metrics files may be replaced ({e})") from e


def _case_files(folder: Path, problems: list, skip_pictures: bool) -> dict[str, tuple[str, Path]]:
    """{key: (case name, file)} of the mask files in `folder`; a second file of a taken case name
    is a problem. `skip_pictures`: leave out segstudio predict's colour and uncertainty PNGs."""
    files = sorted((p for p in folder.iterdir()
                    if (volume_suffix(p) and p.is_file() and not p.name.startswith(".")) or is_supported(p)),
                   key=lambda p: p.name)
    keys = {case_key(p)[1] for p in files}
    out: dict[str, tuple[str, Path]] = {}
    for p in files:
        name, key = case_key(p)
        if skip_pictures and any(key.endswith(s) and key[:-len(s)] in keys for s in PICTURE_SUFFIXES):
            continue
        if key in out:
            problems.append((p.name, f"another file has the same case name: {out[key][1].name}; skipped"))
        else:
            out[key] = (name, p)
    return out


def _class_names_of(truth_dir: Path, results: list[CaseResult]) -> dict[int, str]:
    """Class names by label: classes.txt / codes.txt or dataset.json (Decathlon or nnU-Net v2)
    in the truth folder or its parent, else DICOM SEG segment labels."""
    names, _ = read_class_names(truth_dir)
    for folder in (truth_dir, truth_dir.parent):
        if names is None and (folder / "dataset.json").is_file():
            try:
                labels = json.loads((folder / "dataset.json").read_text(encoding="utf-8-sig")).get("labels")
                names = _class_names(labels) if isinstance(labels, dict) and labels else None
            except (OSError, UnicodeDecodeError, ValueError, AttributeError):
                names = None
    if names:
        return dict(enumerate(names))
    seg = {}
    for r in results:
        for value, name in r.names.items():
            seg.setdefault(value, name)
    return seg


def _cell(value: float) -> str:
    """A CSV number: empty for NaN, 6 significant digits."""
    return "" if not math.isfinite(value) else f"{value:.6g}"
