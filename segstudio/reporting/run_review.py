"""The Review of a run, without Qt: its model, its validation cases predicted and scored worst
first, their NSD and HD95 as scored after training, and the mean Dice with a 95% interval.

A fold set is reviewed out of fold: every labelled case is predicted by the one fold that did
not train on it (each fold's validation cases with that fold's model), so all of them are listed,
not one fold's share; its model for predicting folders is the ensemble of its folds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..config import DataConfig, TrainConfig
from ..data import SegDataset, load_dataset
from ..data.folds import is_fold_set, read_fold_record, split_items
from ..errors import Cancelled, DataError, SegstudioError
from ..inference import Predictor, review_items
from ..inference.predictor import training_folders
from ..inference.review import ReviewItem, add_parent_dice
from ..model.backends import TorchBackend
from ..model.ensemble import fold_runs
from ..preprocess.continued import parent_data
from ..runs import MODEL_META, SPLIT_FILE
from ..training.parent import parent_config
from .after_training import BoundaryScores, boundary_scores
from ..tasks import ProgressFn, StopFn

LEVEL = 0.95
RESAMPLES = 10_000


@dataclass(frozen=True)
class DiceSummary:
    """The mean Dice over `n` cases with a 95% percentile-bootstrap interval (RESAMPLES
    resamples of the cases, seed 0; NaN bounds for fewer than 2 cases); `without` cases have no
    Dice (no foreground, true or predicted)."""

    n: int
    mean: float
    low: float
    high: float
    without: int = 0

    def text(self) -> str:
        """"mean Dice 0.812 (95% CI 0.780-0.840) over 120 images"-like, without the noun."""
        if not self.n:
            return "no case with foreground to score"
        ci = f" (95% CI {self.low:.3f}–{self.high:.3f})" if math.isfinite(self.low) else ""
        return f"mean Dice {self.mean:.3f}{ci} over {self.n}"


def dice_summary(items: list[ReviewItem]) -> DiceSummary:
    """The items' mean Dice with its bootstrap interval (see DiceSummary)."""
    values = np.array([it.dice_mean for it in items if it.target is not None], dtype=np.float64)
    finite = values[np.isfinite(values)]
    return DiceSummary(len(finite), *mean_interval(finite), without=len(values) - len(finite))


def mean_interval(values: np.ndarray, level: float = LEVEL, resamples: int = RESAMPLES,
                  seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its percentile-bootstrap interval at `level` (NaN bounds
    for fewer than 2 values; NaN throughout for none)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    chunk = max(1, 1_000_000 // len(values))  # resamples drawn at a time: about 8 MB of indices
    means = np.concatenate([values[rng.integers(0, len(values), (min(chunk, resamples - start), len(values)))]
                            .mean(axis=1) for start in range(0, resamples, chunk)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)


@dataclass
class RunReview:
    """What the Review shows of a run or a fold set."""

    predictor: Predictor  # predicts folders: the run's model, or the ensemble of a fold set's folds
    dataset: SegDataset | None  # the data the items index (None when it could not be read)
    items: list[ReviewItem]  # worst first
    note: str = ""  # why the data could not be read (there are no items then)
    boundary: BoundaryScores = field(default_factory=BoundaryScores)  # NSD and HD95 per case
    folds: tuple[int, ...] = ()  # a fold set: the folds whose validation cases are listed
    missing: tuple[int, ...] = ()  # a fold set's folds without a trained model (their cases are not listed)
    summary: DiceSummary = field(init=False)  # of the items, computed with them (off the GUI thread)

    def __post_init__(self):
        self.summary = dice_summary(self.items)

    @property
    def out_of_fold(self) -> bool:
        return bool(self.folds)


def review_run(run_dir: str | Path, dataset: SegDataset | None = None, data: DataConfig | None = None,
               progress: ProgressFn | None = None, should_stop: StopFn | None = None) -> RunReview:
    """The Review of `run_dir` (a run, or a fold set: review_fold_set). `dataset`: the run's
    data when loaded already (used when it was prepared as the run prepares its own, same size
    and window); `data`: where the run's data is now, when not where its config.json says. When
    that data cannot be read the review has no items and its note says why (the model still
    predicts). A continued run's items carry its parent's Dice on the same images."""
    progress = progress or (lambda *a: None)
    should_stop = should_stop or (lambda: False)
    if is_fold_set(run_dir):
        return review_fold_set(run_dir, data, progress, should_stop)
    progress(0, 0, "Loading model")
    predictor = Predictor.load(run_dir)
    recorded = lambda: data or TrainConfig.load(Path(run_dir) / "config.json").data  # noqa: E731
    ds = dataset
    if ds is None or (ds.size, ds.window) != (predictor.size, predictor.window):
        try:
            ds, _ = load_dataset(recorded(), predictor.size, progress=progress, should_stop=should_stop)
        except DataError as exc:
            return RunReview(predictor, None, [], str(exc))
    progress(0, 0, "Predicting validation images")
    items = review_items(predictor, ds, should_stop=should_stop)
    parent = predictor.meta.get("parent", "")
    if parent and not ds.volumetric:  # a continued run: its parent's Dice on the same images
        progress(0, 0, "Predicting with the parent run")
        try:
            model = Predictor.load(parent)
            add_parent_dice(items, model, as_parent_prepared(ds, model, parent, recorded, should_stop), should_stop)
        except (SegstudioError, OSError, ValueError):
            pass  # the parent run was moved or deleted, or its data cannot be read now: no comparison
    if should_stop():
        raise Cancelled()
    return RunReview(predictor, ds, items, boundary=boundary_scores(run_dir))


def review_fold_set(root: str | Path, data: DataConfig | None = None, progress: ProgressFn | None = None,
                    should_stop: StopFn | None = None) -> RunReview:
    """Every labelled case of a fold set predicted by the fold that held it out: each fold's
    validation cases (its split, from its config.json, or from `data`'s folders) with that fold's
    model, all of them worst first. Folds without a trained model are left out (`missing`); the
    predictor is the ensemble of the others, whose folds' weights (loaded once) predict their cases."""
    progress = progress or (lambda *a: None)
    should_stop = should_stop or (lambda: False)
    k = read_fold_record(root)["folds"]
    runs = fold_runs(root, allow_missing=True)  # SegstudioError when no fold has a model
    folds = tuple(f for f, _ in runs)
    missing = tuple(f for f in range(k) if f not in folds)
    progress(0, 0, f"Loading the ensemble of {len(runs)} folds")
    ensemble = Predictor.load(root, allow_missing_folds=True)
    own = [replace(data, folds=k, fold=fold) if data is not None else TrainConfig.load(run / "config.json").data
           for fold, run in runs]
    read = lambda cfg: load_dataset(cfg, ensemble.size, progress=progress, should_stop=should_stop)[0]  # noqa: E731
    try:
        progress(0, 0, "Reading the labelled cases")
        shown = read(own[0])
        splits = fold_splits(shown, own, read, [run for _, run in runs])
    except DataError as exc:
        return RunReview(ensemble, None, [], str(exc), folds=folds, missing=missing)
    items: list[ReviewItem] = []
    for (fold, _), model, ds in zip(runs, fold_predictors(ensemble, runs), splits):
        progress(0, 0, f"Fold {fold + 1} of {k}: predicting its validation cases")
        items += review_items(model, ds, should_stop=should_stop)
    if should_stop():
        raise Cancelled()
    items.sort(key=lambda it: (np.isnan(it.dice_mean), it.dice_mean))
    return RunReview(ensemble, shown, items, boundary=merged([boundary_scores(run) for _, run in runs]),
                     folds=folds, missing=missing)


def fold_predictors(ensemble: Predictor, runs: list[tuple[int, Path]]) -> list[Predictor]:
    """Each fold of the fold-set predictor `ensemble` as a predictor of its own, on the weights
    the ensemble loaded (its FoldEnsemble's models, in the order of `runs`)."""
    return [Predictor(TorchBackend(model, json.loads((run / MODEL_META).read_text(encoding="utf-8")),
                                   ensemble.device, run), training_folders(run))
            for model, (_, run) in zip(ensemble.model.models, runs)]


def fold_splits(shown: SegDataset, own: list[DataConfig], read: Callable[[DataConfig], SegDataset],
                runs: list[Path]) -> list[SegDataset]:
    """`shown` (read with `own[0]`) split as each fold split it: as its run recorded it
    (SPLIT_FILE: a case added since is in neither side), else, for a run without the record,
    scans by their groups alone (data.folds.split_items), and 2-D items by reading the data again
    with `read` (their split also weighs the classes their masks hold at full size, which
    `shown` does not keep)."""
    groups = np.asarray(shown.groups, dtype=object)
    splits = []
    for i, (cfg, run) in enumerate(zip(own, runs)):
        try:
            record = json.loads((run / SPLIT_FILE).read_text(encoding="utf-8"))
            sides = [np.flatnonzero(np.isin(groups, list(record[side]))) for side in ("train", "valid")]
            splits.append(replace(shown, train_idx=sides[0], valid_idx=sides[1]))
        except (OSError, ValueError, KeyError, TypeError):
            if shown.volumetric:
                train, valid, _, _ = split_items(shown.groups, cfg)
                splits.append(replace(shown, train_idx=train, valid_idx=valid))
            else:
                splits.append(shown if i == 0 else shared(shown, read(cfg)))
    return splits


def shared(shown: SegDataset, ds: SegDataset) -> SegDataset:
    """`ds`'s split on `shown`'s images when both hold the same items prepared alike (one copy of the images)."""
    same = ds.names == shown.names and (ds.size, ds.window) == (shown.size, shown.window)
    return replace(shown, train_idx=ds.train_idx, valid_idx=ds.valid_idx) if same else ds


def merged(scores: list[BoundaryScores]) -> BoundaryScores:
    """The folds' NSD and HD95 per case as one (each case is scored by one fold only), in the
    unit and at the tolerance of the folds that have any."""
    found = [s for s in scores if s.by_case]
    if not found:
        return BoundaryScores()
    return BoundaryScores({case: v for s in found for case, v in s.by_case.items()}, found[0].unit, found[0].tolerance)


def as_parent_prepared(ds: SegDataset, model: Predictor, parent: str, data: Callable[[], DataConfig],
                       should_stop: StopFn) -> SegDataset:
    """The dataset `ds`'s images prepared as the parent run prepared its own (its size, window and
    mask reading): `ds` when that is how it was prepared, else read again from `data()`'s folders."""
    recorded = parent_config(parent)
    labels = recorded.data.labels if recorded is not None else "auto"
    if (ds.size, ds.window) == (model.size, model.window) and labels in ("auto", ds.labels):
        return ds
    own = parent_data(data(), recorded) if recorded is not None else replace(data(), window=model.window)
    return load_dataset(own, model.size, should_stop=should_stop)[0]
