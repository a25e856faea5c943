"""The bridge between the headless core and Qt: QThreads that run core work and emit Qt signals.

This is the only module that imports both Qt and the heavy core (torch, fastai, the data layer);
those core imports happen inside the threads, so opening the window stays fast. Signals carry
plain data only (event dataclasses with numbers, strings and numpy arrays).

Batch events are coalesced here, in the worker thread, and reach the GUI as lists at most every
`batch_interval` seconds, so a fast GPU never floods the event loop.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QThread, Signal

from segstudio.config import DataConfig, TrainConfig
from segstudio.errors import Cancelled, SegstudioError
from segstudio.training import events as ev
from .tasks import ProgressFn, StopFn



def yield_cpu_to_gui() -> None:
    """Lower the calling worker thread's CPU priority (Linux: a per-thread nice value, which the
    threads it starts, such as torch's OpenMP team, inherit), so the GUI thread gets a core
    promptly while training keeps every core busy. Elsewhere QThread.LowPriority does this."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass


class TaskWorker(QThread):
    """Runs `fn(progress, should_stop)` in a thread; emits progress, then exactly one of
    `result`, `failed` or `cancelled`. `stop()` asks it to stop (cooperative, never terminate)."""

    progress = Signal(int, int, str)
    result = Signal(object)
    failed = Signal(str, str)  # message for the user, technical details
    cancelled = Signal()

    def __init__(self, fn: Callable[[ProgressFn, StopFn], Any], name: str = "task", parent=None):
        super().__init__(parent)
        self.setObjectName(f"worker_{name}")
        self._fn = fn
        self._interval = 0.05  # seconds between progress signals
        self._last = 0.0

    def stop(self) -> None:
        self.requestInterruption()

    def _progress(self, done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        if done >= total > 0 or now - self._last >= self._interval:
            self._last = now
            self.progress.emit(int(done), int(total), str(message))

    def start(self, priority=QThread.Priority.LowPriority) -> None:  # noqa: D102 - below the GUI thread
        super().start(priority)

    def run(self) -> None:  # noqa: D102 (QThread)
        yield_cpu_to_gui()
        try:
            out = self._fn(self._progress, self.isInterruptionRequested)
        except Cancelled:
            self.cancelled.emit()
        except SegstudioError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:  # anything else is a bug: report it, never let it kill the app
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        else:
            self._finish(out)

    def _finish(self, out) -> None:
        if self.isInterruptionRequested():
            self.cancelled.emit()
        else:
            self.result.emit(out)


class TrainWorker(TaskWorker):
    """Runs `TrainingSession.run` (mode "train") or `.find_lr` (mode "find_lr") in a thread.

    `result` always fires once with the final event (Finished, Cancelled, Failed or LRFound; a
    fold set's: training.fold_set.FoldSetEnded), a stopped run included; an unexpected exception
    becomes a Failed event, so the app never dies with the run. Batch events are coalesced and
    reach the GUI as lists.
    """

    run_started = Signal(object)  # ev.Started
    phase_changed = Signal(object)  # ev.PhaseChanged
    batches = Signal(list)  # [ev.BatchEnd, ...], coalesced
    epoch_ended = Signal(object)  # ev.EpochEnd
    preview = Signal(object)  # ev.Preview
    warning = Signal(str)
    scored = Signal(str)  # a finished run's validation scores, in one line (reporting.after_training)
    fold_started = Signal(int, int, bool)  # (fold, folds, resumed): a fold set's next fold begins

    def __init__(self, config: TrainConfig, dataset=None, mode: str = "train",
                 session_factory: Callable[[], Any] | None = None, batch_interval: float = 0.1,
                 parent=None, resume: str = "", folds: int = 0):
        if mode not in ("train", "find_lr"):
            raise ValueError(f"unknown mode {mode!r}")
        super().__init__(self._run_session, mode, parent)
        self.config = config
        self.dataset = dataset
        self.mode = mode
        self.resume = resume  # a run folder to continue from its checkpoint, or a fold set to continue
        self.folds = folds  # >= 2: train a new fold set of this many folds of `config` (each loads its own split)
        self.score_after = True  # score a finished run's validation cases (in this thread, before `result`)
        self._factory = session_factory
        self._interval = batch_interval
        self._lock = threading.Lock()
        self._session = None
        self._stop = False
        self._buffer: list[ev.BatchEnd] = []
        self._last_flush = 0.0

    def stop(self) -> None:
        """Ask the session to stop; it does so within one batch. Safe from any thread."""
        self.requestInterruption()
        with self._lock:
            self._stop = True
            session = self._session
        if session is not None:
            session.cancel()

    def _make_session(self):
        if self._factory is not None:
            return self._factory()
        from segstudio.training.session import TrainingSession

        return TrainingSession()

    def _run_session(self, progress: ProgressFn, should_stop: StopFn):
        from segstudio.data.folds import is_fold_set

        if self.mode == "train" and (self.folds >= 2 or (self.resume and is_fold_set(self.resume))):
            return self._run_fold_set()
        return self._run_one(self.config, self.resume, self.dataset)

    def _run_one(self, config: TrainConfig, resume: str, dataset):
        """One run (or LR finder) in a new session, scored when it finishes: its final event."""
        session = None
        try:
            session = self._make_session()
            with self._lock:
                self._session = session
                stop = self._stop
            if stop:
                final = ev.Cancelled(run_dir="", epochs_done=0, best_dice=float("nan"))
            elif self.mode == "train":
                more = {"resume": resume} if resume else {}  # sessions without resume still plug in
                final = session.run(config, self._on_event, dataset=dataset, **more)
            else:
                final = session.find_lr(config, self._on_event, dataset=dataset)
        except BaseException as exc:  # noqa: BLE001 - the thread must always report an end
            final = ev.Failed(message=f"{type(exc).__name__}: {exc}", advice=traceback.format_exc())
        gc.unfreeze()
        self._flush()
        if isinstance(final, ev.Finished) and self.mode == "train" and self._scores_here(session, final.run_dir):
            self._score(final.run_dir, None if resume else dataset)  # a resumed run reads its own data again
        return final if final is not None else ev.Failed(message="The training session ended without a result.")

    def _run_fold_set(self):
        """Train a fold set's folds one after another (training/fold_set.py, as `segstudio train
        --folds` does), each loading its data with its own split: a new one of `folds` folds
        in a new folder of the runs folder, or the fold set `resume` from where it stopped.
        Stop ends the current fold and keeps the finished ones. A FoldSetEnded, or Failed when
        the fold set cannot be made or read."""
        from segstudio.runs import new_run_dir
        from segstudio.training.fold_set import (FoldSetEnded, discard_if_empty, fold_step, open_fold_set,
                                                 start_fold_set, trained_folds)

        try:
            if self.resume:
                root, created = Path(self.resume), False
                base, k = open_fold_set(root)
            else:
                k, name = self.folds, "-".join(filter(None, (self.config.run_name, f"{self.folds}-folds")))
                root, created = new_run_dir(self.config.out_dir, name), True
                base, _ = start_fold_set(self.config, k, root)
        except (SegstudioError, OSError, ValueError) as exc:
            return ev.Failed(message=f"The fold set could not be {'read' if self.resume else 'made'}: {exc}")
        last = None
        for fold in range(k):
            with self._lock:
                if self._stop:
                    break
            step = fold_step(root, k, base, fold)
            if step is None:  # trained before (a resumed fold set)
                continue
            self.fold_started.emit(fold, k, bool(step.resume))
            last = self._run_one(step.config, step.resume, None)
            if not isinstance(last, ev.Finished):
                break
        if created and discard_if_empty(root, k):
            return FoldSetEnded(str(root), k, (), last)
        return FoldSetEnded(str(root), k, trained_folds(root, k), last)

    def _scores_here(self, session, run_dir: str) -> bool:
        """A run trained in this process, with a model, is scored here; `segstudio train` in a
        child process (ProcessSession) scores its own run, and a followed run is another
        process's."""
        from segstudio.runs import MODEL_FILE, MODEL_META
        from segstudio.training.follow_session import FollowSession
        from segstudio.training.process_session import ProcessSession

        run = Path(run_dir)
        return (self.score_after and bool(run_dir) and not isinstance(session, (FollowSession, ProcessSession))
                and (run / MODEL_FILE).is_file() and (run / MODEL_META).is_file())

    def _score(self, run_dir: str, dataset) -> None:
        """Score the finished run's validation cases into its folder (metrics_per_case.csv and a
        calibration temperature in model.json), with progress; Stop ends the scoring, not the
        run. A failure is a warning: the run finished."""
        from segstudio.reporting.after_training import score_finished_run

        self.phase_changed.emit(ev.PhaseChanged("scoring the validation cases (Dice, NSD, HD95)", ()))
        try:
            text = score_finished_run(run_dir, self._progress, self.isInterruptionRequested, dataset=dataset)
        except Cancelled:
            self.warning.emit("Scoring the validation cases was stopped: the run finished, but its folder has no "
                              "metrics_per_case.csv (File ▸ Save run report scores them).")
        except Exception as exc:  # noqa: BLE001 - the run finished; a scoring failure is only a warning
            self.warning.emit(f"The validation cases could not be scored ({type(exc).__name__}: {exc}); the run "
                              "itself finished.")
        else:
            self.scored.emit(text)

    def _finish(self, out) -> None:
        self.result.emit(out)  # a stopped run ends with its Cancelled event

    # -- event routing (worker thread) -------------------------------------------------------
    def _flush(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self.batches.emit(batch)
        self._last_flush = time.monotonic()

    def _on_event(self, event) -> None:
        if isinstance(event, ev.BatchEnd):
            self._buffer.append(event)
            if time.monotonic() - self._last_flush >= self._interval:
                self._flush()
            return
        self._flush()
        if isinstance(event, ev.Progress):
            self.progress.emit(event.done, event.total, event.message)
        elif isinstance(event, ev.Started):
            # The model, data and libraries are loaded: move them out of the garbage collector's
            # reach for the run, so its full collections (200-600 ms here, holding the GIL) do
            # not stall the GUI. The run's end hands them back.
            gc.freeze()
            self.run_started.emit(event)
        elif isinstance(event, ev.PhaseChanged):
            self.phase_changed.emit(event)
        elif isinstance(event, ev.EpochEnd):
            self.epoch_ended.emit(event)
        elif isinstance(event, ev.Preview):
            self.preview.emit(event)
        elif isinstance(event, ev.WarningEvent):
            self.warning.emit(event.message)
        # final events are returned by the session and emitted once as `result`


# -- core tasks (each runs in a worker thread; TaskRunner.start passes progress and should_stop) --

def probe_environment(*, progress: ProgressFn, should_stop: StopFn) -> dict:
    """Device kind/name and which pretrained encoders are cached locally."""
    from segstudio.config import Arch
    from segstudio.model.device import describe_device
    from segstudio.model.weights import pretrained_available

    kind, name = describe_device("auto")
    weights = {a.value: bool(pretrained_available(a.value)) for a in Arch}
    return {"device_kind": kind, "device_name": name, "pretrained": weights}


def load_dataset_task(data: DataConfig, size: int, *, progress: ProgressFn, should_stop: StopFn):
    """(SegDataset, DatasetReport, ""), or (None, DatasetReport, message) when files were read but
    none is usable."""
    from segstudio.data import load_dataset

    try:
        dataset, report = load_dataset(data, size, progress=progress, should_stop=should_stop)
    except SegstudioError as exc:
        if getattr(exc, "report", None) is None:
            raise
        return None, exc.report, str(exc)
    return dataset, report, ""


def review_task(run_dir: str, dataset, data: DataConfig | None = None, *, progress: ProgressFn,
                should_stop: StopFn):
    """The run's (or fold set's) Review: reporting.run_review.review_run's RunReview."""
    from segstudio.reporting.run_review import review_run

    return review_run(run_dir, dataset, data, progress, should_stop)


def load_mask_task(item, ctx, predictor, *, progress: ProgressFn, should_stop: StopFn):
    """An item's mask at the original size, ready to correct (editing.store.load_mask)."""
    from segstudio.editing.store import load_mask

    return load_mask(item, ctx, predictor)


def save_masks_task(jobs, *, progress: ProgressFn, should_stop: StopFn):
    """Write snapshots of corrected masks (ReviewModel.prepare_save); the GUI thread finishes."""
    from segstudio.editing.review_model import ReviewModel

    return ReviewModel.write(jobs)


def unlabelled_task(predictor, dataset, *, progress: ProgressFn, should_stop: StopFn):
    """The dataset's unlabelled images predicted, most uncertain first: (items, problems)."""
    from segstudio.inference.review import unlabelled_items

    return unlabelled_items(predictor, dataset, should_stop, progress)


def display_frame_task(source: str, frame: int, window: str, *, progress: ProgressFn, should_stop: StopFn):
    """A review item's DICOM frame in modality units (HU for CT), or None for other images."""
    from segstudio.io.dicom_file import read_modality_frame
    from segstudio.preprocess.windowing import parse_window

    return read_modality_frame(source, frame, parse_window(window))


def predict_folder_task(run_dir: str, images_dir: str, out_dir: str, predictor, protected: tuple, *,
                        progress: ProgressFn, should_stop: StopFn):
    """(PredictReport, [ReviewItem...]): predicts every image in `images_dir`, writes PNG masks
    to `out_dir` (and a DICOM SEG per DICOM series; `protected` folders are never written into)
    and reads the first ones back for the review."""
    from segstudio.inference import Predictor, predicted_items

    p = predictor if predictor is not None else Predictor.load(run_dir)
    report = p.predict_folder(images_dir, out_dir, progress=progress, should_stop=should_stop,
                              dicom_seg=True, protected=protected, nifti=True)
    progress(0, 0, "Reading the predictions back")
    return report, predicted_items(report, p.window, p.codes, should_stop)


def export_task(run_dir: str, fmt: str, out: str, *, progress: ProgressFn, should_stop: StopFn):
    """Export the run's model (inference.export): the ExportReport."""
    from segstudio.inference.export import export_model

    progress(0, 0, f"Exporting and checking the {fmt} model")
    return export_model(run_dir, fmt, out)


def run_report_task(run_dir: str, out: str, *, progress: ProgressFn, should_stop: StopFn):
    """Write the run's report page (reporting.write_run_report) to `out`: its path."""
    from segstudio.reporting import write_run_report

    return write_run_report(run_dir, out, progress=progress, should_stop=should_stop)


def sample_dataset_task(*, progress: ProgressFn, should_stop: StopFn):
    """(images_dir, masks_dir) of the built-in sample dataset (written on first use)."""
    from segstudio.data import sample_dataset

    return sample_dataset()


def sample_volumes_task(*, progress: ProgressFn, should_stop: StopFn):
    """The root folder of the built-in sample of 3-D scans (written on first use)."""
    from segstudio.data.sample_volumes import sample_volumes

    return sample_volumes()[0].parent
