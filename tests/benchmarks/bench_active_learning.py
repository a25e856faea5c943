"""Active learning on the sample dataset: does correcting the most uncertain slices first help
more than correcting slices at random?

    .venv/bin/python tests/benchmarks/bench_active_learning.py     # ~6 min on 2 CPU cores

Simulates a user in the loop on the built-in phantom dataset (40 DICOM CT slices, liver and
kidney). The validation split (`data.valid_idx`) is fixed. `--k0` training slices start labelled,
the other training slices are "unlabelled" (their masks are hidden from training). Each round:

  train    TrainingSession.run on the labelled slices only (resnet18, random encoder, CPU,
           `--size` px); round 1 from scratch (`--epochs`), later rounds continue from the
           previous round's run (`TrainConfig.init_from`: its best model, lower LRs;
           `--epochs-next`)
  measure  the foreground-mean validation Dice of the run's best model (Finished.best_dice),
           checked against the saved model loaded with Predictor
  correct  `--k` unlabelled slices join the labelled set with their true masks, chosen
             uncertainty: highest mean entropy first (Predictor.probabilities_resized with the
                          flip ensemble, uncertainty.entropy_map and score per slice)
             random:      a seeded random draw

Round 1 is the same for both strategies (same slices, same seed), so it is trained once.
Everything (sample files, runs, user folders) goes to a temporary folder that is removed at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def isolate(tmp: Path) -> None:
    """Point every per-user folder segstudio or torch might use into `tmp`."""
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "TORCH_HOME"):
        folder = tmp / var.lower()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(folder)


def train(data, labelled: list[int], args, out_dir: Path, name: str, parent: str = ""):
    """One round's run on the labelled items; returns (run_dir, best Dice, seconds, warnings)."""
    from segstudio.config import Arch, DataConfig, Device, TrainConfig
    from segstudio.training import events as ev
    from segstudio.training.session import TrainingSession

    subset = replace(data, train_idx=np.array(sorted(labelled), dtype=np.int64))
    cfg = TrainConfig(data=DataConfig(str(args.images_dir), str(args.masks_dir)), arch=Arch.resnet18,
                      pretrained=False, size=args.size, bs=args.bs,
                      epochs=args.epochs if not parent else args.epochs_next, device=Device.cpu,
                      seed=args.train_seed, out_dir=str(out_dir), run_name=name, preview_count=0,
                      init_from=parent)
    warnings: list[str] = []
    started: list = []

    def on_event(e):
        if isinstance(e, ev.WarningEvent):
            warnings.append(e.message)
        elif isinstance(e, ev.Started):
            started.append(e)

    t0 = time.perf_counter()
    result = TrainingSession().run(cfg, on_event, dataset=subset)
    seconds = time.perf_counter() - t0
    if not isinstance(result, ev.Finished):
        raise SystemExit(f"{name}: training did not finish: {result}")
    lrs = (started[0].lr_lo, started[0].lr_hi) if started else (math.nan, math.nan)
    return result.run_dir, result.best_dice, seconds, warnings, lrs


def evaluate(predictor, data) -> tuple[float, np.ndarray]:
    """Foreground-mean and per-class Dice of `predictor` over all validation pixels (as training
    computes it), without the flip ensemble."""
    from segstudio.training.metrics import dice_per_class, foreground_mean

    valid = np.asarray(data.valid_idx)
    pred = predictor.probabilities_resized(data.images[valid]).argmax(dim=1).cpu().numpy()
    dice = dice_per_class(pred.astype(np.uint8), data.masks[valid], len(data.codes))
    return foreground_mean(dice), dice


def uncertainty_scores(predictor, data, items: list[int]) -> np.ndarray:
    """Mean entropy (0..1) of each item, with the flip ensemble."""
    from segstudio.inference.uncertainty import entropy_map, score

    probs = predictor.probabilities_resized(data.images[np.asarray(items)], flip=True)
    return np.array([score(e) for e in entropy_map(probs)])  # (N, H, W): one score per slice


def simulate(data, args, tmp: Path, seed: int) -> dict:
    """Both strategies from the same starting set; per round: labelled count, Dice of each."""
    from segstudio.inference import Predictor

    rng = np.random.default_rng(seed)
    pool = [int(i) for i in data.train_idx]
    start = [int(i) for i in rng.choice(pool, size=args.k0, replace=False)]
    out_dir = tmp / "runs"
    rows = []
    state = {s: {"labelled": list(start), "run": ""} for s in ("uncertainty", "random")}
    pick_rng = np.random.default_rng(seed + 1000)
    for r in range(1, args.rounds + 1):
        row = {"round": r, "labelled": len(state["uncertainty"]["labelled"])}
        shared = None
        for strategy in ("uncertainty", "random"):
            st = state[strategy]
            if r == 1 and shared is not None:  # round 1 is the same run for both strategies
                run_dir, best, secs, warnings, lrs = shared
            else:
                run_dir, best, secs, warnings, lrs = train(data, st["labelled"], args, out_dir,
                                                           f"s{seed}-r{r}-{strategy[:4]}", st["run"])
                shared = run_dir, best, secs, warnings, lrs
                for w in warnings:
                    print(f"    warning ({strategy}, round {r}): {w}", flush=True)
            st["run"] = run_dir
            predictor = Predictor.load(run_dir, device="cpu")
            check, per_class = evaluate(predictor, data)
            row[strategy] = {"dice": best, "check": check, "per_class": per_class, "seconds": secs,
                             "lrs": lrs}
            if r < args.rounds:
                unlabelled = [i for i in pool if i not in st["labelled"]]
                if strategy == "uncertainty":
                    scores = uncertainty_scores(predictor, data, unlabelled)
                    order = np.argsort(-scores, kind="stable")[:args.k]
                    picked = [unlabelled[j] for j in order]
                    st["scores"] = [float(scores[j]) for j in order]
                    st["unlabelled_mean"] = float(scores.mean())
                else:
                    picked = [int(i) for i in pick_rng.choice(unlabelled, size=min(args.k, len(unlabelled)),
                                                              replace=False)]
                st["picked"] = picked
                st["labelled"] = st["labelled"] + picked
        rows.append(row)
        u, rd = row["uncertainty"], row["random"]
        print(f"  seed {seed} round {r}: {row['labelled']} labelled; Dice uncertainty {u['dice']:.3f} "
              f"(check {u['check']:.3f}, {u['seconds']:.0f} s, LR {u['lrs'][0]:.1e}..{u['lrs'][1]:.1e}), "
              f"random {rd['dice']:.3f} (check {rd['check']:.3f}, {rd['seconds']:.0f} s)", flush=True)
        print(f"    per class [bg, liver, kidney] uncertainty {np.round(u['per_class'], 3).tolist()}, "
              f"random {np.round(rd['per_class'], 3).tolist()}", flush=True)
        if r < args.rounds:
            su = state["uncertainty"]
            fg = [bool(data.masks[i].max() >= 2) for i in su["picked"]]
            fr = [bool(data.masks[i].max() >= 2) for i in state["random"]["picked"]]
            print(f"    uncertainty picks {su['picked']} (mean entropy {np.round(su['scores'], 4).tolist()}, "
                  f"unlabelled mean {su['unlabelled_mean']:.4f}; with kidney {sum(fg)}/{len(fg)}); "
                  f"random picks {state['random']['picked']} (with kidney {sum(fr)}/{len(fr)})", flush=True)
    return {"seed": seed, "rows": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--k0", type=int, default=4, help="training slices labelled at the start")
    p.add_argument("--k", type=int, default=4, help="slices corrected per round")
    p.add_argument("--epochs", type=int, default=15, help="epochs of round 1 (from scratch; with 4 "
                   "slices an epoch is one batch)")
    p.add_argument("--epochs-next", type=int, default=8, help="epochs of each continued round")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--bs", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds of the starting set and the random picks, one simulation each")
    p.add_argument("--train-seed", type=int, default=0, help="TrainConfig.seed of every run")
    args = p.parse_args()

    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segstudio-bench-al-") as tmp_name:
        tmp = Path(tmp_name)
        isolate(tmp)
        import torch

        from segstudio.config import DataConfig
        from segstudio.data import load_dataset, sample_dataset

        args.images_dir, args.masks_dir = sample_dataset(tmp / "sample")
        data, _ = load_dataset(DataConfig(str(args.images_dir), str(args.masks_dir)), args.size)
        n_train = len(data.train_idx)
        need = args.k0 + args.k * (args.rounds - 1)
        if need > n_train:
            raise SystemExit(f"{args.rounds} rounds of {args.k} after {args.k0} need {need} training "
                             f"slices; the dataset has {n_train}")
        print(f"sample dataset: {len(data)} slices at {args.size} px, classes {data.codes}, "
              f"{n_train} training ({n_train - args.k0} start unlabelled), {len(data.valid_idx)} "
              f"validation (fixed); resnet18, random encoder, CPU ({torch.get_num_threads()} threads), "
              f"batch {args.bs}, {args.epochs} epochs in round 1, {args.epochs_next} per continued round",
              flush=True)
        results = [simulate(data, args, tmp, seed) for seed in args.seeds]

    wall = time.perf_counter() - t_all
    print()
    print("Validation Dice (foreground mean, best epoch of each round's run):")
    head = f"{'round':>5} {'labelled':>8}"
    for res in results:
        head += f"  {'unc s' + str(res['seed']):>8} {'rand s' + str(res['seed']):>8}"
    if len(results) > 1:
        head += f"  {'unc mean':>8} {'rand mean':>9}"
    print(head)
    for r in range(args.rounds):
        line = f"{r + 1:>5} {results[0]['rows'][r]['labelled']:>8}"
        u_all, r_all = [], []
        for res in results:
            row = res["rows"][r]
            u_all.append(row["uncertainty"]["dice"])
            r_all.append(row["random"]["dice"])
            line += f"  {u_all[-1]:>8.3f} {r_all[-1]:>8.3f}"
        if len(results) > 1:
            line += f"  {np.mean(u_all):>8.3f} {np.mean(r_all):>9.3f}"
        print(line)
    train_s = sum(row[s]["seconds"] for res in results for row in res["rows"] for s in ("uncertainty", "random")
                  if not (row["round"] == 1 and s == "random"))
    print(f"\ntotal wall time {wall:.0f} s ({wall / 60:.1f} min), of which training {train_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
