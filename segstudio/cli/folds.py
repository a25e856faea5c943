"""`segstudio train --folds K [--fold I]` and `--resume FOLDSET`: a fold set trained fold after
fold, each fold an ordinary run (its events, checkpoint, scores) in `FOLDSET/fold_<i>`."""

from __future__ import annotations

import sys
from pathlib import Path

from ..data.folds import fold_name, is_fold_set


def train_fold_set(args, train_config, run_training) -> int:
    """0 when every fold asked for has a trained model, 130 when stopped, else 1 (2: bad options).
    `train_config(args)` and `run_training(args, config, resume)` are cli/train.py's (passed in: train.py
    imports this module)."""
    from ..errors import SegstudioError
    from ..files import NotWritable, check_writable
    from ..runs import default_runs_dir
    from ..training.fold_set import discard_if_empty, fold_step, open_fold_set, start_fold_set

    created = False  # the fold-set folder made by this call (removed again if no fold trains)
    try:
        if args.resume:
            root = Path(args.resume)
            base, k = open_fold_set(root)
            if args.device:
                base.device = type(base.device)(args.device)
        else:
            config = train_config(args)
            continued = bool(args.init_from) and is_fold_set(args.init_from)
            k = config.data.folds if continued else args.folds  # a continued fold set keeps its folds
            if args.folds and args.folds != k:
                print(f"error: {args.init_from} has {k} folds: a fold set continued from it has as many "
                      "(leave out --folds)", file=sys.stderr)
                return 2
            if not config.data.images:
                print("error: give --images and --masks (or --images with a dataset root), or --demo", file=sys.stderr)
                return 2
            runs = Path(config.out_dir) if config.out_dir else default_runs_dir()
            check_writable(runs, "runs folder")
            root = runs / (config.run_name or f"{k}_folds")
            if continued and not config.run_name:  # a fresh name beside its parent's
                stem = f"{Path(args.init_from).name}-continued"
                root = next(runs / f"{stem}{i or ''}" for i in range(1000) if not (runs / f"{stem}{i or ''}").exists())
            existed = root.exists()
            base, made = start_fold_set(config, k, root, args.fold)
            created = made and not existed and args.fold is None  # one fold's tasks share the folder
    except (SegstudioError, NotWritable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {args.resume} is not a fold set ({exc.strerror or exc})", file=sys.stderr)
        return 2
    if args.fold is not None and args.fold >= k:
        print(f"error: fold {args.fold} does not exist in {k} folds (0 to {k - 1})", file=sys.stderr)
        return 2
    for fold in [args.fold] if args.fold is not None else range(k):
        step = fold_step(root, k, base, fold)
        if step is None:
            print(f"fold {fold} of {k}: already trained ({root / fold_name(fold)})", file=sys.stderr)
            continue
        print(f"fold {fold} of {k}" + (" (resumed)" if step.resume else ""), file=sys.stderr)
        status = run_training(args, step.config, step.resume)
        if status:
            if created and discard_if_empty(root, k):  # made by this call and holding no model: no husk
                return status
            print(f"fold {fold} of {k} did not finish; the finished folds are kept: "
                  f"segstudio train --resume {root} continues", file=sys.stderr)
            return status
    print(f"fold set: {root} (predict with --model {root})")
    return 0
