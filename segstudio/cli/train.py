"""`segstudio train`: the config from the options, one run (or a fold set, cli/folds.py) trained
with Ctrl-C stopping it cleanly, its validation cases scored, and its events printed."""

from __future__ import annotations

import math
import signal
import sys
import threading
from pathlib import Path

from ..config import (DEMO_SETTINGS, DEMO_VOLUME_CONTEXT, DEMO_VOLUME_SETTINGS, Arch, Device, InputMode, Loss, Norm,
                     Precision, Schedule, TrainConfig)


def train_config(args) -> TrainConfig:
    """The TrainConfig from --config (if any), the demo defaults, then explicit options."""
    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    if getattr(args, "data_root", None):  # a cluster job's config: data folders relative to the root
        for key in ("images", "masks"):
            folder = getattr(cfg.data, key)
            if folder and not Path(folder).expanduser().is_absolute():
                setattr(cfg.data, key, str(Path(args.data_root) / folder))
    if args.init_from:
        from ..data.folds import is_fold_set
        from ..training.fold_set import continue_fold_set
        from ..training.parent import continue_config

        if is_fold_set(args.init_from):
            cfg, _, notes = continue_fold_set(args.init_from, cfg if args.config else None)
            for note in notes:
                print(f"warning: {note}", file=sys.stderr)
        else:
            cfg = continue_config(args.init_from, cfg if args.config else None)
    if args.demo or args.demo_volumes:
        demo_data(cfg, volumes=args.demo_volumes)
        for key, value in (DEMO_VOLUME_SETTINGS if args.demo_volumes else DEMO_SETTINGS).items():
            if getattr(args, key, None) is None:
                setattr(cfg, key, value)
    data_opts = {"images": args.images, "masks": args.masks, "valid_pct": args.valid_pct, "window": args.window,
                 "labels": args.labels, "class_names": args.class_names, "axis": args.axis,
                 "context": args.context}
    for key, value in data_opts.items():
        if value is not None:
            setattr(cfg.data, key, value)
    opts = {"epochs": args.epochs, "size": args.size, "bs": args.bs, "lr_lo": args.lr_lo, "lr_hi": args.lr_hi,
            "freeze_epochs": args.freeze_epochs, "pretrained": args.pretrained, "weights_path": args.weights,
            "augment": args.augment, "seed": args.seed, "out_dir": args.out, "run_name": args.name,
            "empty_share": args.empty_share,
            "arch": args.arch and Arch(args.arch), "schedule": args.schedule and Schedule(args.schedule),
            "loss": args.loss and Loss(args.loss), "device": args.device and Device(args.device),
            "precision": args.precision and Precision(args.precision), "scale": args.scale,
            "input_mode": args.input_mode and InputMode(args.input_mode), "norm": args.norm and Norm(args.norm),
            "deep_supervision": args.deep_supervision, "keep_checkpoint": args.keep_checkpoint,
            "time_budget": args.time_budget}
    for key, value in opts.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def demo_data(cfg: TrainConfig, volumes: bool) -> None:
    """Point `cfg` at the built-in 2-D sample, or at the sample of 3-D scans (2.5-D slices)."""
    if volumes:
        from ..data.sample_volumes import sample_volumes

        images, _ = sample_volumes()
        cfg.data.images, cfg.data.masks, cfg.data.context = str(images.parent), "", DEMO_VOLUME_CONTEXT
    else:
        from ..data import sample_dataset

        images, masks = sample_dataset()
        cfg.data.images, cfg.data.masks = str(images), str(masks)


def cmd_train(args) -> int:
    from ..errors import SegstudioError
    from ..data.folds import is_fold_set
    from .folds import train_fold_set

    if args.folds or (args.resume and is_fold_set(args.resume)) or (args.init_from and is_fold_set(args.init_from)):
        return train_fold_set(args, train_config, run_training)
    if args.fold is not None:
        print("error: --fold needs --folds K", file=sys.stderr)
        return 2
    try:
        cfg = TrainConfig.load(Path(args.resume) / "config.json") if args.resume else train_config(args)
    except SegstudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {args.resume} is not a run folder ({exc.strerror or exc})", file=sys.stderr)
        return 2
    if args.resume and args.device:
        cfg.device = Device(args.device)
    if args.resume and args.keep_checkpoint:
        cfg.keep_checkpoint = True
    if not cfg.data.images:
        print("error: give --images and --masks (or --images with a dataset root), or --demo", file=sys.stderr)
        return 2
    from ..files import NotWritable, check_writable
    from ..runs import default_runs_dir

    try:  # before the data is read: a run folder that cannot be written fails at once
        check_writable(args.resume or cfg.out_dir or default_runs_dir(), "run folder" if args.resume else "runs folder")
    except NotWritable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return run_training(args, cfg, args.resume or "")


def run_training(args, cfg: TrainConfig, resume: str) -> int:
    """Train one run (Ctrl-C stops it cleanly) and score it: 0 finished, 130 stopped, 1 failed."""
    from ..training import events as ev
    from ..training.session import TrainingSession

    session, result = TrainingSession(), {}
    printer = EventPrinter(ev, cfg.arch.value) if args.events == "text" else json_lines

    def stop(signum, frame):
        print("\nStopping after the current batch (the best checkpoint is kept)...", file=sys.stderr)
        session.cancel()

    previous = signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGBREAK"):  # Windows: how the app's ProcessSession asks a child run to stop
        signal.signal(signal.SIGBREAK, stop)
    worker = threading.Thread(target=lambda: result.setdefault("event", session.run(cfg, printer, resume=resume)))
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    finally:
        signal.signal(signal.SIGINT, previous)
    final = result.get("event")
    if isinstance(final, ev.Cancelled):
        return 130  # the shell's convention for a run stopped by Ctrl-C
    if isinstance(final, ev.Finished) and getattr(args, "metrics", True) and session.ranks.main:
        score_run(final.run_dir, jsonl=args.events == "jsonl")
    return 0 if isinstance(final, ev.Finished) else 1


def score_run(run_dir: str, jsonl: bool) -> None:
    """Score a finished run's validation cases into its folder (reporting.after_training); a
    failure, or Ctrl-C, is a warning: the run itself finished. `jsonl`: progress and warnings
    as event lines (the app's ProcessSession shows them), else lines on stderr."""
    from ..errors import Cancelled
    from ..reporting.after_training import score_finished_run
    from ..training import events as ev

    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, lambda *_: stop.set())
    last = [""]

    def say(event) -> None:
        if jsonl:
            json_lines(event)
        elif isinstance(event, ev.WarningEvent):
            print(f"warning: {event.message}", file=sys.stderr)
        elif event.message.split(" ", 1)[0] != last[0] or event.done == event.total:  # a line per step
            last[0] = event.message.split(" ", 1)[0]
            print(f"scoring: {event.message}" + (f" ({event.done}/{event.total})" if event.total else ""),
                  file=sys.stderr, flush=True)

    say(ev.Progress(0, 0, "the validation cases with the best model (Dice, NSD, HD95; --no-metrics skips this)"))
    try:
        text = score_finished_run(run_dir, lambda done, total, message: say(ev.Progress(done, total, message)),
                                  stop.is_set)
    except Cancelled:
        say(ev.WarningEvent("scoring the validation cases was stopped: the run finished, but its folder has no "
                            "metrics_per_case.csv (`segstudio report` scores them)"))
    except Exception as exc:  # noqa: BLE001 - the run finished; a scoring failure is only a warning
        say(ev.WarningEvent(f"the validation cases could not be scored ({type(exc).__name__}: {exc}); the run "
                            "itself finished"))
    else:
        if jsonl:
            json_lines(ev.Progress(1, 1, text))
        else:
            print(f"validation: {text}", flush=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def json_lines(event) -> None:
    from ..training.event_json import to_json

    print(to_json(event), flush=True)


class EventPrinter:
    """Prints one line per epoch, warnings to stderr, and the run folder at the end."""

    def __init__(self, ev, arch: str = ""):
        self.ev, self.arch, self.codes, self.loading = ev, arch, (), False

    def __call__(self, e) -> None:
        ev = self.ev
        if isinstance(e, ev.Progress):
            if e.total and e.done in (0, e.total):  # (0, 0): still listing files
                print(f"loading data: {e.done}/{e.total}", file=sys.stderr)
        elif isinstance(e, ev.Started):
            self.codes = e.codes
            lrs = ", ".join(f"{g.name} {g.lr:.1e}{' (frozen)' if g.frozen else ''}" for g in e.groups)
            model = f"a {self.arch} U-Net " if self.arch else ""
            print(f"training {model}on {e.device_name}{' with mixed precision' if e.mixed_precision else ''}: "
                  f"{e.n_train} train / {e.n_valid} valid images in batches of {e.bs}, classes {', '.join(e.codes)}, "
                  f"{'starting from ' + e.parent_run if e.parent_run else ('pretrained' if e.pretrained else 'random') + ' encoder'}\nlearning rates: {lrs}\nrun folder: {e.run_dir}")
        elif isinstance(e, ev.EpochEnd):
            per_class = ", ".join(f"{name} {d:.3f}" for name, d in zip(self.codes[1:], e.dice[1:]) if not math.isnan(d))
            print(f"epoch {e.epoch + 1}/{e.epochs}  train {e.train_loss:.4f}  valid {e.valid_loss:.4f}  "
                  f"dice {e.dice_mean:.3f} ({per_class})  {e.seconds:.1f} s{'  *best' if e.is_best else ''}", flush=True)
        elif isinstance(e, ev.WarningEvent):
            print(f"warning: {e.message}", file=sys.stderr)
        elif isinstance(e, ev.Finished):
            at = f"epoch {e.best_epoch + 1}" if e.best_epoch >= 0 else "the starting model (no epoch did better)"
            print(f"finished: best dice {e.best_dice:.3f} at {at}; model in {e.run_dir}")
        elif isinstance(e, ev.Cancelled):
            print(f"stopped after {e.epochs_done} epoch(s); best dice {e.best_dice:.3f}; run folder {e.run_dir}")
        elif isinstance(e, ev.Failed):
            print(f"error: {e.message}" + (f"\n{e.advice}" if e.advice else ""), file=sys.stderr)
