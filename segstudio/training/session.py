"""TrainingSession: load data, build the learner, train with discriminative LRs, emit events.

`run` and `find_lr` block and are meant for a worker thread; `cancel` may be called from any
thread and stops within one batch. Every outcome is an event: nothing escapes as an exception.
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from fastai.torch_core import set_seed

from ..config import InputMode, Norm, Schedule, TrainConfig
from ..data import SegDataset, load_dataset
from ..data.folds import split_record
from ..data.report import training_blocker
from ..errors import Cancelled, DataError, SegstudioError
from ..files import write_atomic
from ..model.device import device_name, resolve_device
from ..preprocess.continued import inherit_preprocessing
from ..preprocess.plan import make_plan
from ..runs import CHECKPOINT, MODEL_META, SPLIT_FILE, MetricsLog, new_run_dir, save_model
from . import events as ev
from .callbacks import EventReporter, StopGuard
from .groups import lr_plan
from .learner import BuiltLearner, build_learner, group_info
from .loaders import gather
from .checkpoint import (CheckpointWriter, checkpoint_state, load_checkpoint, load_optimizer, rng_state,
                         set_rng_state)
from .time_budget import MAX_EPOCHS, TimeBudget
from .event_log import EventLog, finished_event, tee
from .distributed import (DistributedSync, Group, Ranks, launch_record, ranks_from_env, restarted_run,
                          shard_loaders, unwrap)
from .parent import Parent, fine_tune_config, load_parent, parent_config
from .deep_supervision import deployable_state
from .schedules import fit_poly
from .patches import input_mode, preview_tiles
from .failures import failure_event

LEARNED = 0.05  # a best Dice below this after a whole run means nothing was learned: say so
EventFn = Callable[[object], None]


class TrainingSession:
    """One task (a training run or an LR search), driven from a worker thread; make one per task."""

    def __init__(self, ranks: Ranks | None = None):
        self._stop = threading.Event()
        self.ranks = ranks or ranks_from_env()  # one process, or this process's place under torchrun
        self.group = Group(self.ranks)
        self.launch: dict = {}  # distributed.json of a torchrun launch

    def cancel(self) -> None:
        """Ask the running task to stop (thread-safe; takes effect within one batch)."""
        self._stop.set()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def run(self, config: TrainConfig, on_event: EventFn, dataset: SegDataset | None = None,
            resume: str = ""):
        """Train; returns (and emits) the final Finished, Cancelled or Failed event. `resume`: a
        run folder whose checkpoint the run continues from (`config` is that run's config.json)."""
        run_dir: Path | None = None
        reporter = None
        ranks, group = self.ranks, self.group
        self.started = time.monotonic()  # when `run` began: a time budget counts from here
        log = EventLog()  # the run folder's events.jsonl: a run another process can follow
        if ranks.main:
            on_event = tee(on_event, log)
        else:  # under torchrun only rank 0 reports; the others say only why they failed
            on_event = _failures_only(on_event)
        try:
            device, warning = resolve_device(config.device)
            device = group.start(device)
            if warning:
                on_event(ev.WarningEvent(warning))
            if not resume and ranks.restarts:
                resume = group.share(restarted_run(config.out_dir, ranks) if ranks.main else "")
                ended = finished_event(resume) if resume else None  # rank 0 finished it before the restart
                on_event(ev.WarningEvent(f"torchrun restarted the launch (restart {ranks.restarts}): " + (
                    f"{resume} had finished; nothing is left to train." if ended else
                    f"resuming {resume}." if resume else "no checkpoint of it to resume (give torchrun a "
                    "--rdzv-id or --standalone to resume restarts); starting again.")))
                if ended:
                    return self._emit(on_event, ended)
            checkpoint = group.share(load_checkpoint(resume) if ranks.main else None) if resume else None
            if checkpoint is not None and config.schedule == Schedule.fine_tune and config.freeze_epochs:
                raise SegstudioError("Resume continues one_cycle runs; this one used fine_tune with frozen "
                                     "epochs. Continue from its best model instead (--init-from).")
            if config.init_from and checkpoint is None:  # a new continued run: its parent's preprocessing
                dataset, config = _inherit(config, dataset)
            with group.main_first():  # rank 0 builds the slice cache; the others open it
                data = dataset if dataset is not None else self._load(config, on_event)
                data, config = self._input(config, data, on_event)
            blocker = training_blocker(len(data), len(data.train_idx), len(data.valid_idx))
            if blocker:
                raise DataError(blocker[0].upper() + blocker[1:] + ". Add pairs, or check the "
                                "dataset report for the files that could not be used.")
            parent = None
            if checkpoint is not None:  # the run's own weights, normalisation and folder
                run_dir = Path(resume)
                meta = json.loads((run_dir / MODEL_META).read_text(encoding="utf-8"))
                parent = Parent(str(run_dir), meta, checkpoint["model"], config.lrs())
            elif config.init_from:
                parent, notes = load_parent(config.init_from, config, data)
                config = fine_tune_config(config, parent)
                for message in notes:
                    on_event(ev.WarningEvent(message))
            if run_dir is None:
                run_dir = Path(group.share(str(new_run_dir(config.out_dir, config.run_name, exact=config.data.folds >= 2)) if ranks.main else ""))
            if ranks.main:
                log.open(run_dir)
            built = build_learner(config, data, device, path=str(run_dir), parent=parent)
            if checkpoint is None and ranks.main:
                write_atomic(run_dir / "config.json", used_config(config, data, built).to_json())
                write_atomic(run_dir / SPLIT_FILE, json.dumps(split_record(data.groups, data.train_idx, data.valid_idx)))
            if ranks.active:
                self._distribute(built, config, run_dir, device)
            for message in built.warnings:
                on_event(ev.WarningEvent(message))
            reporter = self._train(config, data, built, run_dir, device, on_event, checkpoint, parent)
            guard = built.learn.cbs.filter(lambda c: isinstance(c, StopGuard))[0]
            if guard.failure:
                return self._emit(on_event, ev.Failed(guard.failure, advice=(
                    "Lower the learning rate (the upper end of the range), or turn mixed precision off."),
                    run_dir=str(run_dir)))
            saved = reporter.best_epoch >= 0 or reporter.start_saved
            best = reporter.best_dice if saved else math.nan
            if self._stop.is_set():
                if not saved and checkpoint is None and ranks.main:  # stopped before a model was saved: no husk
                    log.close()
                    shutil.rmtree(run_dir, ignore_errors=True)
                    run_dir = None
                return self._emit(on_event, ev.Cancelled(str(run_dir or ""), reporter.epochs_done, best))
            if best < LEARNED:
                on_event(ev.WarningEvent(
                    f"The best validation Dice is {best:.3f}: the model has not learned the classes yet. "
                    "Train longer, or check the learning rate (Find LR) and the masks."))
            finished = self._emit(on_event, ev.Finished(str(run_dir), reporter.best_epoch, best, reporter.epochs_done))
            if ranks.main and not config.keep_checkpoint:  # recorded as finished first: continued, not resumed
                _remove_checkpoint(run_dir)
            return finished
        except Cancelled:
            return self._emit(on_event, ev.Cancelled(str(run_dir or ""), 0, math.nan))
        except BaseException as exc:  # noqa: BLE001 - every failure becomes an event
            return self._emit(on_event, failure_event(exc, run_dir if ranks.main else None))
        finally:
            log.close()
            group.finish()

    def _distribute(self, built: BuiltLearner, config: TrainConfig, run_dir: Path, device) -> None:
        """This rank's shard of the data, its own augmentation draws, scores summed over ranks,
        and the launch in the run record."""
        ranks = self.ranks
        self.launch = launch_record(run_dir, ranks, built.learn.dls.train.bs, device)
        shard_loaders(built.learn.dls, ranks, built.dice)
        if ranks.rank:  # the model was initialised alike everywhere; augmentations must differ
            set_seed(config.seed + ranks.rank)
        built.learn.add_cb(DistributedSync(self.group, built.dice))

    def find_lr(self, config: TrainConfig, on_event: EventFn, dataset: SegDataset | None = None,
                num_it: int = 100):
        """Run fastai's LR finder; returns (and emits) LRFound, Cancelled or Failed."""
        from .lr_find import find_lr

        try:
            data = dataset if dataset is not None else self._load(config, on_event)
            device, _ = resolve_device(config.device)
            result = find_lr(config, data, device, self._stop, num_it=num_it, on_event=on_event)
            if result is None:
                return self._emit(on_event, ev.Cancelled("", 0, math.nan))
            return self._emit(on_event, result)
        except Cancelled:
            return self._emit(on_event, ev.Cancelled("", 0, math.nan))
        except BaseException as exc:  # noqa: BLE001
            return self._emit(on_event, failure_event(exc, None))

    def _input(self, config: TrainConfig, data: SegDataset, on_event: EventFn) -> tuple[SegDataset, TrainConfig]:
        """The dataset and config for the input the run uses: whole images resized, or patches at
        native resolution ("auto" decided by the images' size; see patches.input_mode)."""
        mode, note = input_mode(config, data)
        if mode == "patches" and (data.native is None or data.native.scale != config.scale):
            if not config.data.images:  # a dataset handed over without its folders cannot be re-read
                if config.input_mode == InputMode.patches:
                    raise DataError("Patches at native resolution need the image folder to read the images at "
                                    "full size; this dataset came without one.")
                mode, note = "resize", ""
            else:  # e.g. the app's preloaded dataset, at the training size only
                data = self._load(config, on_event, native_scale=config.scale)
        if note:
            on_event(ev.WarningEvent(note))
        elif mode == "resize" and data.native is not None:
            data = replace(data, native=None)
        return data, replace(config, input_mode=InputMode(mode))

    def _load(self, config: TrainConfig, on_event: EventFn, native_scale: float | None = None) -> SegDataset:
        def progress(done, total, message):
            on_event(ev.Progress(done, total, message))

        if native_scale is None and config.input_mode != InputMode.resize:  # "auto" may need them
            native_scale = config.scale
        data, report = load_dataset(config.data, config.size, progress=progress, should_stop=self._stop.is_set,
                                    native_scale=native_scale)
        for problem in report.problems()[:20]:
            on_event(ev.WarningEvent(f"{problem.path}: {problem.reason}"))
        return data

    def _train(self, config: TrainConfig, data: SegDataset, built: BuiltLearner, run_dir: Path,
               device, on_event: EventFn, checkpoint: dict | None = None,
               parent: Parent | None = None) -> EventReporter:
        learn = built.learn
        lo, hi = config.lrs(built.pretrained)
        frozen_epochs = (config.freeze_epochs if config.schedule == Schedule.fine_tune and built.pretrained
                         and not config.init_from else 0)  # a continued run's decoder is trained already
        if config.schedule == Schedule.fine_tune and not built.pretrained and config.freeze_epochs:
            on_event(ev.WarningEvent("fine_tune: the encoder is random, so the frozen epochs are skipped."))
        main, group = self.ranks.main, self.group
        metrics = MetricsLog(run_dir)
        writer = CheckpointWriter()  # each epoch's checkpoint is written while the next one trains
        meta = make_plan(config, data, pretrained=built.pretrained, norm=built.norm, stats=built.stats,
                         head=built.head).to_meta()
        if self.launch:
            meta["distributed"] = self.launch
        if checkpoint is not None and main:
            metrics.reset(checkpoint["metrics"])

        def on_best(epoch, dice):  # epochs in files count from 1, as the app and CLI show them
            if main:
                save_model(run_dir, deployable_state(unwrap(learn.model)), {**meta, "epoch": epoch + 1, "dice_mean": dice})

        def on_epoch(row):
            rngs = group.gather(rng_state(learn))  # every rank's generators, for a resume under torchrun
            if not main:
                return
            per_class = {f"dice_{name}": float(d) for name, d in zip(data.codes, row.pop("dice"))}
            metrics.append({**row, "epoch": row["epoch"] + 1, **per_class})
            writer.submit(run_dir, checkpoint_state(
                learn, row["epoch"] + 1, metrics.rows, reporter.best_dice, reporter.best_epoch,
                {"first_valid_loss": reporter.first_valid_loss, "start_saved": reporter.start_saved}, rngs))
            if self.ranks.active:  # torchrun ends every rank when one fails and the restart resumes only
                writer.wait()      # a checkpoint on disk: under torchrun each epoch's is written at once

        reporter = EventReporter(on_event, built.dice, frozen_epochs + config.epochs,
                                 preview_items(data, config.preview_count if main else 0), on_best, on_epoch)
        if checkpoint is None and config.init_from:  # the starting model is the one to beat
            learn.validate()
            reporter.best_dice = float(built.dice.value)
            reporter.start_saved = True
            if main:
                save_model(run_dir, deployable_state(unwrap(learn.model)),
                           {**meta, "epoch": 0, "dice_mean": reporter.best_dice})
            inputs = " with this run's inputs (see above)" if parent is not None and parent.changes else ""
            on_event(ev.WarningEvent(f"Continuing from {Path(config.init_from).name}: its model scores Dice "
                                     f"{reporter.best_dice:.3f} on this validation set{inputs}; an epoch is kept "
                                     "only when it does better."))
        learn.add_cbs([StopGuard(self._stop, agree=group.most if self.ranks.active else None), reporter])
        plan = lr_plan(lo, hi)
        if not frozen_epochs:
            learn.unfreeze()
        on_event(ev.Started(device=device.type, device_name=device_name(device), mixed_precision=built.mixed_precision,
                            pretrained=built.pretrained, groups=group_info(learn, plan, config.arch.value),
                            codes=tuple(data.codes), n_train=len(data.train_idx), n_valid=len(data.valid_idx),
                            epochs=frozen_epochs + config.epochs, iters_per_epoch=len(learn.dls.train), bs=built.bs,
                            run_dir=str(run_dir), lr_lo=lo, lr_hi=hi, volumetric=data.volumetric,
                            parent_run=config.init_from))
        done = 0
        if checkpoint is not None:  # after Started: the plots start from the epochs done
            done = self._restore(learn, reporter, checkpoint, data, config, on_event)
        budget = None
        if config.time_budget > 0 and checkpoint is None:  # a resumed run keeps the epochs it chose
            def on_chosen(epochs: int, note: str) -> None:
                reporter.total_epochs = frozen_epochs + epochs
                if main:  # the run records them: config.json's epochs, and resume trains that many
                    write_atomic(run_dir / "config.json", used_config(replace(config, epochs=epochs), data,
                                                                      built).to_json())
                on_event(ev.WarningEvent(note))
            budget = TimeBudget(self.started + config.time_budget, on_chosen,
                                agree=group.most if self.ranks.active else None)
        try:
            self._fit(learn, config, reporter, (lo, hi), frozen_epochs, done, checkpoint, device, on_event,
                      budget)
        except BaseException:
            writer.wait(raise_error=False)  # the last checkpoint is whole before the failure is reported
            raise
        writer.wait()  # a write that failed (a full disk) fails the run here
        return reporter

    def _fit(self, learn, config: TrainConfig, reporter: EventReporter, lrs: tuple[float, float], frozen_epochs: int,
             done: int, checkpoint: dict | None, device, on_event: EventFn, budget: TimeBudget | None) -> None:
        """The fits of a run: fine_tune's frozen epochs, then the discriminative ones (sized by
        `budget` when the run has a time budget)."""
        lo, hi = lrs
        plan, group = lr_plan(lo, hi), self.group
        if frozen_epochs:
            learn.freeze()
            on_event(ev.PhaseChanged("frozen", group_info(learn, plan, config.arch.value)))
            group.wrap(learn, device)
            learn.fit_one_cycle(frozen_epochs, slice(hi), pct_start=0.99)
            if self._stop.is_set():  # fine_tune trap: a stop in the frozen phase ends the run
                return
            learn.unfreeze()
            reporter.epoch_base = frozen_epochs
            on_event(ev.PhaseChanged("unfrozen", group_info(learn, plan, config.arch.value)))
        if done < config.epochs:
            if checkpoint is not None:
                rngs = checkpoint.get("rng_ranks") or [checkpoint["rng"]]
                reporter.restore = lambda: set_rng_state(learn, rngs[self.ranks.rank % len(rngs)])
            group.wrap(learn, device)
            epochs = config.epochs
            if budget is not None:  # room for many epochs; the budget chooses how many
                learn.add_cb(budget)
                epochs = MAX_EPOCHS
            if config.schedule == Schedule.poly:
                fit_poly(learn, epochs, slice(lo, hi), start_epoch=done)
            else:
                learn.fit_one_cycle(epochs, slice(lo, hi), start_epoch=done)

    @staticmethod
    def _restore(learn, reporter: EventReporter, checkpoint: dict, data: SegDataset, config: TrainConfig,
                 on_event: EventFn) -> int:
        """A resumed run: the optimizer and the reporter as they were, the epochs so far replayed
        as events (the plots show each once); returns the epochs done."""
        if not load_optimizer(learn, checkpoint["opt"]):
            on_event(ev.WarningEvent("The checkpoint holds another optimiser's state (saved by an earlier segstudio "
                                     "or on another kind of device): the weights, epochs and schedule go on as "
                                     "they were, the optimiser's running averages start afresh."))
        done = int(checkpoint["epochs_done"])
        reporter.best_dice, reporter.best_epoch = checkpoint["best_dice"], checkpoint["best_epoch"]
        reporter.first_valid_loss = checkpoint["extra"].get("first_valid_loss", math.nan)
        reporter.start_saved = bool(checkpoint["extra"].get("start_saved", False))
        reporter.skip_to, reporter.epochs_done = done, done
        reporter.iteration = done * len(learn.dls.train)
        for row in checkpoint["metrics"]:
            epoch = int(row["epoch"]) - 1
            on_event(ev.EpochEnd(epoch=epoch, epochs=config.epochs, train_loss=row["train_loss"],
                                 valid_loss=row["valid_loss"], dice=tuple(float(row.get(f"dice_{c}", math.nan))
                                                                           for c in data.codes),
                                 dice_mean=row["dice_mean"], seconds=row["seconds"],
                                 is_best=epoch == reporter.best_epoch))
        on_event(ev.WarningEvent(f"Resuming after epoch {done} of {config.epochs} (best Dice so far "
                                 f"{reporter.best_dice:.3f})."))
        return done

    @staticmethod
    def _emit(on_event: EventFn, event):
        on_event(event)
        return event


def _inherit(config: TrainConfig, dataset: SegDataset | None) -> tuple[SegDataset | None, TrainConfig]:
    """A continued run's config with its parent's decisions where it leaves them to the data
    (preprocess.continued.inherit_preprocessing); a dataset handed over that was read with other settings is
    dropped, to be read again as the parent read its images (one without folders is kept)."""
    recorded = parent_config(config.init_from)
    if recorded is None:
        return dataset, config
    inherited = inherit_preprocessing(config, recorded)
    if dataset is not None and inherited.data != config.data and config.data.images:
        dataset = None
    return dataset, inherited


def _remove_checkpoint(run_dir: Path) -> None:
    """A finished run's checkpoint.pth (about three times the model): it only serves to resume an
    unfinished run. One that cannot be removed stays; the run has finished all the same."""
    try:
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    except OSError:
        pass


def _failures_only(on_event: EventFn) -> EventFn:
    def emit(event):
        if isinstance(event, ev.Failed):
            on_event(event)
    return emit


def used_config(config: TrainConfig, data: SegDataset, built: BuiltLearner) -> TrainConfig:
    """The config as the run really used it (config.json): whether the encoder was pretrained,
    the batch size, the learning rates, the DICOM window, how mask values were read, and the data folders as
    absolute paths, so that replaying it (from any folder) trains the same way."""
    lo, hi = config.lrs(built.pretrained)
    folders = {k: str(Path(v).expanduser().absolute()) if str(v).strip() else ""
               for k, v in (("images", config.data.images), ("masks", config.data.masks))}
    return replace(config, pretrained=built.pretrained, lr_lo=lo, lr_hi=hi, norm=Norm(built.norm), bs=built.bs,
                   data=replace(config.data, window=data.window, labels=data.labels, **folders))


def preview_items(data: SegDataset, count: int):
    """(names, model inputs (K,Cin,S,S), images (K,C,S,S), masks (K,S,S)) of `count` validation
    items spread over the validation set, those with foreground first; None without any."""
    if data.native is not None:
        return preview_tiles(data, count, data.size)
    valid = np.asarray(data.valid_idx, dtype=np.int64)
    if count <= 0 or valid.size == 0:
        return None
    pool = valid[data.has_foreground[valid]]
    pool = pool if len(pool) >= count else valid
    idx = pool[np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(np.int64)]
    inputs, masks = gather(data, idx)
    return [data.name(i) for i in idx], inputs, data.images[idx], masks
