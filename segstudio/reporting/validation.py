"""A run's validation cases predicted with its best model and scored as `segstudio evaluate`
scores (Dice, NSD, HD95, ASSD per case and class, surface.py's definitions), at each case's own
resolution: a 2-D image at its file's size (distances in pixels), a scan at its voxel grid
(distances in mm, volumes in mL). Alongside: pictures of the worst and best cases and a sample of
the predicted probabilities for calibration (ECE before and after a fitted temperature)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig
from ..data import SegDataset, load_dataset
from ..data.layouts import Case
from ..data.masks import class_indices
from ..data.volume_dataset import read_label
from ..preprocess.recipe import display_window, windowed
from ..preprocess.slicing import take_slice
from ..preprocess.windowing import apply_window, parse_window
from ..errors import Cancelled, DataError
from ..evaluation.calibration import ReliabilityDiagram, apply_temperature, fit_temperature, reliability_diagram
from ..evaluation.evaluate import METRICS, EvaluationReport, MetricRow, summarise, write_report
from ..evaluation.surface import ClassMetrics, label_metrics
from ..runs import write_json
from ..inference.predictor import Predictor, prefetched
from ..inference.review import full_size_pair
from ..inference.volumes import predict_volume
from ..io import Volume, read_channels, read_scan
from ..tasks import ProgressFn, StopFn

CALIBRATION_NAME = "calibration.json"
KEEP = 3                    # worst and best cases pictured
SAMPLES_PER_CASE = 50_000   # pixels (voxels) of each case kept for calibration, at most
MAX_SAMPLES = 2_000_000     # and of all cases together
DISPLAY_SIDE = 384          # a pictured plane's longest side at most (pixels)
NAN = float("nan")


@dataclass
class Plane:
    """One picture of a case: the image as shown (uint8 grey or RGB), truth and prediction (class
    indices) and the height of a pixel over its width (the scan's physical aspect)."""
    title: str
    image: np.ndarray
    truth: np.ndarray
    pred: np.ndarray
    aspect: float = 1.0


@dataclass
class CaseView:
    case: str
    dice_mean: float
    planes: list[Plane]
    focus: str = ""  # a scan's planes cross the centre of this class (its lowest Dice)


@dataclass
class Calibration:
    """Top-label reliability of the validation probabilities as predicted and after dividing the
    logits by `temperature`, fitted on the same pixels (so `after` is an optimistic estimate)."""
    before: ReliabilityDiagram
    after: ReliabilityDiagram
    temperature: float
    samples: int

    def to_dict(self) -> dict:
        return {"temperature": self.temperature, "samples": self.samples, "ece_before": self.before.ece,
                "ece_after": self.after.ece, "before": _diagram_dict(self.before), "after": _diagram_dict(self.after)}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(_diagram(d["before"]), _diagram(d["after"]), float(d["temperature"]), int(d["samples"]))


@dataclass
class ValidationScores:
    rows: list[MetricRow] = field(default_factory=list)
    worst: list[CaseView] = field(default_factory=list)   # worst first
    best: list[CaseView] = field(default_factory=list)    # best first
    calibration: Calibration | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (case, reason) not scored
    tolerance_mm: float = 1.0
    scans: bool = False


def score_validation(run_dir: str | Path, progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                     *, predictor: Predictor | None = None, dataset: SegDataset | None = None,
                     tolerance_mm: float = 1.0, keep: int = KEEP, cases: set[str] | None = None,
                     calibrate: bool = True) -> ValidationScores:
    """Predict the run's validation cases (each image, or each scan of a 3-D run) with its best
    model and score them. `predictor` / `dataset`: the run's, when loaded already (the dataset
    must be the run's data at its training size); else read from the run folder (config.json).
    `cases`: only these case names (e.g. to picture them). `keep`: worst and best cases
    pictured. SegstudioError when the model or the data cannot be loaded; Cancelled when
    `should_stop()` turns True; a case that cannot be read is a problem in the result."""
    progress = progress or (lambda *a: None)
    stop = should_stop or (lambda: False)
    run_dir = Path(run_dir)
    if predictor is None:
        progress(0, 0, "Loading the model")
        predictor = Predictor.load(run_dir)
    if dataset is None:
        try:
            config = TrainConfig.load(run_dir / "config.json")
        except (OSError, ValueError, TypeError) as e:
            raise DataError(f"{run_dir.name} has no readable config.json ({e}): its data is not known") from e
        dataset, _ = load_dataset(config.data, predictor.size, progress=progress, should_stop=stop)
    if dataset.volumetric:
        todo = [k for k in dataset.valid_volumes() if cases is None or dataset.volumes[k].name in cases]
    else:
        todo = [int(i) for i in dataset.valid_idx if cases is None or dataset.name(int(i)) in cases]
    sampler = _Sampler(len(todo)) if calibrate else None
    scores = ValidationScores(tolerance_mm=tolerance_mm, scans=dataset.volumetric)
    views: list[CaseView] = []
    scored = (_scan_cases if dataset.volumetric else _image_cases)(predictor, dataset, todo, stop, progress, sampler)
    for name, outcome in scored:
        if isinstance(outcome, str):
            scores.problems.append((name, outcome))
            continue
        truth, pred, spacing, picture = outcome
        metrics = label_metrics(truth, pred, spacing, tolerance_mm, classes=range(1, len(dataset.codes)))
        voxel = float(np.prod(spacing)) / 1000 if dataset.volumetric else 1.0
        scores.rows += _rows(name, metrics, dataset.codes, voxel, dataset.volumetric)
        mean = finite_mean([m.dice for m in metrics.values()])
        if keep > 0 and math.isfinite(mean):
            focus = min((c for c, m in metrics.items() if math.isfinite(m.dice)), key=lambda c: metrics[c].dice)
            views = _extremes(views + [CaseView(name, mean, picture(focus),
                                                dataset.codes[focus] if dataset.volumetric else "")], keep)
    ranked = sorted(views, key=lambda v: v.dice_mean)
    scores.worst, scores.best = ranked[:keep], ranked[keep:][::-1][:keep]
    if sampler is not None and sampler.n:
        progress(0, 0, "Fitting a temperature")
        scores.calibration = sampler.calibration()
    return scores


def write_validation(run_dir: str | Path, scores: ValidationScores) -> list[Path]:
    """metrics_per_case.csv and summary.json (as `segstudio evaluate` writes them) and
    calibration.json in `run_dir`, atomically."""
    report = EvaluationReport(scores.tolerance_mm, rows=list(scores.rows),
                              problems=[(case, why) for case, why in scores.problems])
    report.summary = summarise(report)
    written = write_report(report, Path(run_dir))
    if scores.calibration is not None:
        path = Path(run_dir) / CALIBRATION_NAME
        write_json(path, scores.calibration.to_dict())
        written.append(path)
    return written


def read_rows(path: str | Path) -> list[MetricRow]:
    """The rows of a metrics_per_case.csv; DataError when it cannot be read."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return [MetricRow(r["case"], int(r["class"]), r["class_name"], *(_number(r[m]) for m in METRICS),
                              _number(r["volume_pred"]), _number(r["volume_truth"]), r.get("empty") or "",
                              r.get("distance_unit") or "px", r.get("volume_unit") or "px")
                    for r in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"cannot read {Path(path).name}: {e}") from e


def read_calibration(path: str | Path) -> Calibration | None:
    """calibration.json's content; None when missing or unreadable."""
    try:
        return Calibration.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


def case_means(rows: list[MetricRow]) -> dict[str, float]:
    """Each case's mean foreground Dice (NaN when no class is in truth or prediction), worst
    first, NaN last."""
    by_case: dict[str, list[float]] = {}
    for r in rows:
        by_case.setdefault(r.case, []).append(r.dice)
    means = {case: finite_mean(values) for case, values in by_case.items()}
    return dict(sorted(means.items(), key=lambda kv: (math.isnan(kv[1]), kv[1])))


def _image_cases(predictor: Predictor, data: SegDataset, idx: list[int], stop: StopFn, progress: ProgressFn, sampler):
    """(name, (truth, pred, spacing, picture) or a reason) of each image `idx`, at its full size;
    picture(class) -> its Planes."""
    spec = parse_window(predictor.window)
    problems: list[tuple[str, str]] = []

    def entries():  # read ahead in a thread while the model runs
        for i in idx:
            if stop():
                raise Cancelled()
            try:
                image, truth = full_size_pair(data, i, spec)
            except (DataError, OSError) as e:
                problems.append((data.name(i), str(e)))
                continue
            yield (i, image, truth), image.shape[:2], predictor.prepare(image)

    done = 0
    for (i, image, truth), probs in predictor.stream(prefetched(entries(), 4), batch=8):
        while problems:
            yield problems.pop(0)
        pred = probs.argmax(dim=0).to(torch.uint8).cpu().numpy()
        if sampler is not None:
            sampler.add(probs, truth)
        shown = windowed(image, spec)
        done += 1
        progress(done, len(idx), f"Scored {data.name(i)}")
        yield data.name(i), (truth, pred, (1.0, 1.0), lambda _, a=(shown, truth, pred): [_plane("", *a)])
    yield from problems


def _scan_cases(predictor: Predictor, data: SegDataset, volumes: list[int], stop: StopFn, progress: ProgressFn,
                sampler):
    """(name, (truth, pred, spacing, picture) or a reason) of each scan `volumes`, on its own voxel
    grid; picture(class) -> the Planes through that class."""
    for done, k in enumerate(volumes):
        if stop():
            raise Cancelled()
        v = data.volumes[k]
        progress(done, len(volumes), f"Predicting {v.name}")
        try:
            image = read_channels(list(v.sources)) if len(v.sources) > 1 else read_scan(v.sources[0])
            label = read_label(Case(v.name, [Path(p) for p in v.sources], Path(v.label)), image, data.codes)
            if label.shape != image.shape:
                raise DataError(f"labels are {label.shape} voxels but the scan is {image.shape}")
            truth = class_indices(label.array, data.class_keys, len(data.codes), data.labels == "instances",
                                  volume=True)
        except (DataError, OSError, MemoryError) as e:
            yield v.name, str(e) if not isinstance(e, MemoryError) else "not enough memory to read this scan"
            continue
        pred = predict_volume(predictor, image, stop, on_slice=None if sampler is None else partial(
            _sample_slice, sampler, truth, predictor.plan.slice_axis))
        yield v.name, (truth, pred, tuple(image.spacing),
                       lambda c, a=(image, truth, pred): _scan_planes(*a, predictor, c))
    progress(len(volumes), len(volumes), "Scored")


def _sample_slice(sampler: _Sampler, truth: np.ndarray, axis: int, k: int, probs: torch.Tensor) -> None:
    """Hand slice `k`'s probabilities and truth to `sampler`, a share of the scan's sample."""
    sampler.add(probs, take_slice(truth, axis, k), share=1 / truth.shape[axis])


def _scan_planes(volume: Volume, truth: np.ndarray, pred: np.ndarray, predictor: Predictor, focus: int) -> list[Plane]:
    """Axial, coronal and sagittal planes through the centre of class `focus` (in truth and
    prediction together), shown as the viewer shows them (take_slice) through the run's CT
    window or the scan's own percentiles."""
    values = volume.array[0] if volume.array.ndim == 4 else volume.array
    shown = display_window(volume, predictor.plan)
    centre = np.argwhere((truth == focus) | (pred == focus)).mean(axis=0).round().astype(int)
    dz, dy, dx = volume.spacing
    planes = []
    for name, axis, aspect in (("axial", 0, dy / dx), ("coronal", 1, dz / dx), ("sagittal", 2, dz / dy)):
        k = int(centre[axis])
        planes.append(_plane(name, apply_window(take_slice(values, axis, k), *shown), take_slice(truth, axis, k),
                             take_slice(pred, axis, k), aspect))
    return planes


def _plane(title: str, image: np.ndarray, truth: np.ndarray, pred: np.ndarray, aspect: float = 1.0) -> Plane:
    """A Plane at most DISPLAY_SIDE pixels a side (every n-th pixel: labels stay labels)."""
    step = max(1, math.ceil(max(truth.shape) / DISPLAY_SIDE))
    cut = (slice(None, None, step), slice(None, None, step))
    return Plane(title, np.ascontiguousarray(image[cut]), np.ascontiguousarray(truth[cut]),
                 np.ascontiguousarray(pred[cut]), aspect)


def _rows(case: str, metrics: dict[int, ClassMetrics], codes: list[str], voxel: float, scan: bool) -> list[MetricRow]:
    unit, volume_unit = ("mm", "mL") if scan else ("px", "px")
    return [MetricRow(case, c, codes[c], m.dice, m.nsd, m.hd95, m.assd, m.voxels_pred * voxel,
                      m.voxels_truth * voxel, m.empty, unit, volume_unit) for c, m in sorted(metrics.items())]


def _extremes(views: list[CaseView], keep: int) -> list[CaseView]:
    """The `keep` lowest and `keep` highest scoring of `views` (all of them when few)."""
    ranked = sorted(views, key=lambda v: v.dice_mean)
    return ranked if len(ranked) <= 2 * keep else ranked[:keep] + ranked[-keep:]


def finite_mean(values) -> float:
    """The mean of the finite values (NaN: a metric not defined for that case), NaN if none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else NAN


def read_tolerance(summary: Path, default: float) -> float:
    """The NSD tolerance a summary.json records, else `default`."""
    try:
        return float(json.loads(Path(summary).read_text(encoding="utf-8"))["tolerance_mm"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return default


def _number(text: str) -> float:
    return float(text) if text.strip() else NAN


class _Sampler:
    """A random sample of predicted class probabilities and their true labels: as many pixels of
    each of `n_cases` cases (spread over a scan's slices by `share`), MAX_SAMPLES in all."""

    def __init__(self, n_cases: int, seed: int = 0):
        self.per_case = min(SAMPLES_PER_CASE, MAX_SAMPLES // max(n_cases, 1))
        self.rng = np.random.default_rng(seed)
        self.probs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.n = 0

    def add(self, probs: torch.Tensor, truth: np.ndarray, share: float = 1.0) -> None:
        """`probs` (K, H, W) on any device and `truth` (H, W) class indices."""
        total = truth.size
        m = min(total, max(1, round(self.per_case * share)))
        pick = self.rng.choice(total, m, replace=False) if m < total else np.arange(total)
        flat = probs.reshape(probs.shape[0], -1)[:, torch.from_numpy(pick).to(probs.device)]
        self.probs.append(flat.T.float().cpu().numpy())
        self.labels.append(np.asarray(truth).reshape(-1)[pick].astype(np.int64))
        self.n += m

    def calibration(self) -> Calibration:
        p, y = np.concatenate(self.probs), np.concatenate(self.labels)
        t = fit_temperature(p, y, probabilities=True)
        after = reliability_diagram(apply_temperature(p, t, probabilities=True), y)
        return Calibration(reliability_diagram(p, y), after, t, len(y))


def _diagram_dict(d: ReliabilityDiagram) -> dict:
    def plain(a):
        return [None if not math.isfinite(float(x)) else float(x) for x in a]
    return {"edges": plain(d.edges), "confidence": plain(d.confidence), "accuracy": plain(d.accuracy),
            "counts": [int(c) for c in d.counts]}


def _diagram(d: dict) -> ReliabilityDiagram:
    def arr(key):
        return np.asarray([NAN if x is None else x for x in d[key]], dtype=np.float64)
    return ReliabilityDiagram(arr("edges"), arr("confidence"), arr("accuracy"), np.asarray(d["counts"], dtype=np.int64))
