"""What follows a finished run: its best model's validation cases scored (Dice, NSD, HD95, ASSD
per case and class; validation.py) into its folder (metrics_per_case.csv, summary.json,
calibration.json), and the temperature fitted on them kept in model.json, where the Predictor
applies it to the probabilities of uncertainty maps and exported probabilities; and those
scores read back per case for the Review's table."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..evaluation.evaluate import CSV_NAME, SUMMARY_NAME
from ..runs import MODEL_META, write_json
from .validation import (ValidationScores, finite_mean, read_rows, read_tolerance, score_validation,
                         write_validation)
from ..tasks import ProgressFn, StopFn

TEMPERATURE = "temperature"  # model.json's key


def score_finished_run(run_dir: str | Path, progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                       *, dataset=None, tolerance_mm: float = 1.0) -> str:
    """Score `run_dir`'s validation cases with its best model, write the results into the run
    folder and the fitted temperature into its model.json; a one-line summary. `dataset`: the
    run's data at its training size when loaded already. SegstudioError when the model or the
    data cannot be read, Cancelled when `should_stop()` turns True (nothing written then)."""
    scores = score_validation(run_dir, progress, should_stop, dataset=dataset, tolerance_mm=tolerance_mm, keep=0)
    write_validation(run_dir, scores)
    if scores.calibration is not None:
        store_temperature(run_dir, scores.calibration.temperature)
    return summary(scores)


def store_temperature(run_dir: str | Path, temperature: float) -> None:
    """Set model.json's "temperature" (its other keys kept), written atomically."""
    path = Path(run_dir) / MODEL_META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"cannot read {path}: {e}") from e
    if not isinstance(meta, dict):
        raise DataError(f"{path} does not hold a model's settings")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"a temperature must be positive, got {temperature}")
    meta[TEMPERATURE] = float(temperature)
    write_json(path, meta)


def summary(scores: ValidationScores) -> str:
    """"6 validation images scored: Dice 0.81, NSD 0.74 (1 px), HD95 3.2 px; temperature 1.43
    (ECE 0.051 -> 0.012); metrics_per_case.csv in the run folder"."""
    cases = len({r.case for r in scores.rows})
    unit = scores.rows[0].distance_unit if scores.rows else ("mm" if scores.scans else "px")
    tolerance = f"{scores.tolerance_mm:g} {unit}"

    def mean(metric: str) -> float:
        return finite_mean(getattr(r, metric) for r in scores.rows)

    text = (f"{cases} validation {'scan' if scores.scans else 'image'}{'' if cases == 1 else 's'} scored: "
            f"Dice {mean('dice'):.3f}, NSD {mean('nsd'):.3f} ({tolerance}), HD95 {mean('hd95'):.1f} {unit}")
    c = scores.calibration
    if c is not None:
        text += f"; temperature {c.temperature:.2f} (ECE {c.before.ece:.3f} -> {c.after.ece:.3f})"
    if scores.problems:
        text += f"; {len(scores.problems)} not scored ({scores.problems[0][0]}: {scores.problems[0][1]})"
    return text + f"; {CSV_NAME} in the run folder"


@dataclass(frozen=True)
class BoundaryScores:
    """Per case: the mean NSD and HD95 over its classes (NaN when none has one), in `unit` at
    NSD's `tolerance`; empty when the run folder holds no readable metrics_per_case.csv."""
    by_case: dict[str, tuple[float, float]] = field(default_factory=dict)
    unit: str = "mm"
    tolerance: float = 1.0


def boundary_scores(run_dir: str | Path) -> BoundaryScores:
    """The run folder's metrics_per_case.csv, per case (see BoundaryScores)."""
    run_dir = Path(run_dir)
    try:
        rows = read_rows(run_dir / CSV_NAME)
    except DataError:
        return BoundaryScores()
    by_case: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by_case.setdefault(r.case, []).append((r.nsd, r.hd95))

    tolerance = read_tolerance(run_dir / SUMMARY_NAME, 1.0)
    return BoundaryScores({case: (finite_mean(v[0] for v in pairs), finite_mean(v[1] for v in pairs))
                           for case, pairs in by_case.items()},
                          rows[0].distance_unit if rows else "mm", tolerance)
