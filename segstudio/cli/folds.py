"""`segstudio train --folds K [--fold I]` and `--resume FOLDSET`: a fold set trained fold after
fold, each fold an ordinary run (its events, checkpoint, scores) in `FOLDSET/fold_<i>`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..config import TrainConfig
from ..data.folds import FOLDS_FILE, fold_name, is_fold_set, read_fold_record


def train_fold_set(args, train_config, run_training) -> int:
    """0 when every fold asked for has a trained model, 130 when stopped, else 1 (2: bad options).
    `train_config(args)` and `run_training(args, config, resume)` are cli/train.py's (passed in: train.py
    imports this module)."""
    from ..errors import SegstudioError
    from ..files import NotWritable, check_writable, write_atomic
    from ..runs import default_runs_dir, write_json
    from ..training.fold_set import fold_config, fold_state

    created = False  # the fold-set folder made by this call (removed again if no fold trains)
    try:
        if args.resume:
            root = Path(args.resume)
            k = read_fold_record(root)["folds"]
            base = TrainConfig.load(root / "config.json")
            if args.device:
                base.device = type(base.device)(args.device)
        else:
            base, k = train_config(args), args.folds
            if not base.data.images:
                print("error: give --images and --masks (or --images with a dataset root), or --demo", file=sys.stderr)
                return 2
            runs = Path(base.out_dir) if base.out_dir else default_runs_dir()
            check_writable(runs, "runs folder")
            root = runs / (base.run_name or f"{k}_folds")
            if is_fold_set(root):
                if (existing := read_fold_record(root)["folds"]) != k:
                    raise SegstudioError(f"{root} is a fold set of {existing} folds, not {k}.")
                if args.fold is None:
                    raise SegstudioError(f"{root} is already a fold set: continue it with --resume {root}, "
                                         "or give another --name.")
            else:
                created = not root.exists()
                root.mkdir(parents=True, exist_ok=True)
                write_json(root / FOLDS_FILE, {"folds": k, "seed": base.data.split_seed,
                                               "runs": {str(f): fold_name(f) for f in range(k)}})
                base.data.folds = k
                write_atomic(root / "config.json", base.to_json())
    except (SegstudioError, NotWritable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {args.resume} is not a fold set ({exc.strerror or exc})", file=sys.stderr)
        return 2
    if args.fold is not None and args.fold >= k:
        print(f"error: fold {args.fold} does not exist in {k} folds (0 to {k - 1})", file=sys.stderr)
        return 2
    folds = [args.fold] if args.fold is not None else list(range(k))
    for fold in folds:
        state = fold_state(root, fold)
        if state == "finished":
            print(f"fold {fold} of {k}: already trained ({root / fold_name(fold)})", file=sys.stderr)
            continue
        print(f"fold {fold} of {k}" + (" (resumed)" if state == "stopped" else ""), file=sys.stderr)
        if state == "stopped":
            run = root / fold_name(fold)
            status = run_training(args, TrainConfig.load(run / "config.json"), str(run))
        else:
            status = run_training(args, fold_config(base, root, k, fold), "")
        if status:
            if created and not any(fold_state(root, f) != "new" for f in range(k)):
                shutil.rmtree(root, ignore_errors=True)  # made by this call and holding no model: no husk
                return status
            print(f"fold {fold} of {k} did not finish; the finished folds are kept: "
                  f"segstudio train --resume {root} continues", file=sys.stderr)
            return status
    print(f"fold set: {root} (predict with --model {root})")
    return 0
