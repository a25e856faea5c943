"""Quality at equal training time: full-resolution Dice on held-out images for recipe variants,
several seeds each, one run after the other (a script, not a test).

Each variant trains for about `--seconds` of wall time: a one-epoch probe measures its epoch time,
and the run gets the epochs that fit (one-cycle needs its length in advance). Its Dice is that of
the run's predictor (sliding window for patch runs; mirrored test-time augmentation where the
variant says) on held-out images at their own resolution: per image, the mean over the foreground
classes present in the image or the prediction, then the mean over images.

Data: `--images/--masks` (your own; a quarter of the pairs is held out), or generated large
non-square images with small discs and a rare small class.

    python tests/benchmarks/bench_recipe.py [--seconds 60] [--seeds 0 1 2] [--variants resize patches ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

# name: (TrainConfig overrides, flip TTA at prediction)
VARIANTS = {
    "resize": ({"input_mode": "resize"}, False),
    "patches": ({"input_mode": "patches"}, False),
    "patches+tta": ({"input_mode": "patches"}, True),
    "patches+r34": ({"input_mode": "patches", "arch": "resnet34"}, False),
    "patches+bs16": ({"input_mode": "patches", "bs": 16}, False),
}


def generated(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    from tests.core.test_patches import large_pairs

    return large_pairs(root, n=n, shape=(240, 360), seed=seed)


def hold_out(images: Path, masks: Path, root: Path) -> tuple[Path, Path, Path, Path]:
    """(train images, train masks, test images, test masks): every fourth pair held out (copies)."""
    folders = [root / n for n in ("train_images", "train_masks", "test_images", "test_masks")]
    for f in folders:
        f.mkdir(parents=True)
    mask_files = {p.stem: p for p in masks.iterdir() if p.is_file()}
    pairs = sorted((p, mask_files[p.stem]) for p in images.iterdir() if p.stem in mask_files)
    for k, (img, msk) in enumerate(pairs):
        dst = folders[2:] if k % 4 == 3 else folders[:2]
        shutil.copy2(img, dst[0] / img.name)
        shutil.copy2(msk, dst[1] / msk.name)
    return tuple(folders)


def config(name: str, seed: int, epochs: int, images: Path, masks: Path, out: Path, args):
    from segstudio.config import Arch, Device, InputMode, TrainConfig

    overrides, _ = VARIANTS[name]
    cfg = TrainConfig(arch=Arch(args.arch), pretrained=False, size=args.size, bs=args.bs, epochs=epochs,
                      seed=seed, device=Device(args.device), out_dir=str(out), preview_count=0)
    cfg.data.images, cfg.data.masks = str(images), str(masks)
    for key, value in overrides.items():
        setattr(cfg, key, {"arch": Arch, "input_mode": InputMode}.get(key, type(getattr(cfg, key)))(value))
    return cfg


def train(cfg) -> tuple[str, float, float]:
    from segstudio.training import events as ev
    from segstudio.training.session import TrainingSession

    t0 = time.perf_counter()
    final = TrainingSession().run(cfg, lambda e: None)
    if not isinstance(final, ev.Finished):
        sys.exit(f"training failed: {final}")
    rows = __import__("segstudio.runs", fromlist=["read_metrics"]).read_metrics(final.run_dir)[0]
    return final.run_dir, time.perf_counter() - t0, sum(r["seconds"] for r in rows)


def held_out_dice(run_dir: str, test: object, flip: bool, device: str) -> float:
    from segstudio.inference import Predictor
    from segstudio.training.metrics import dice_per_class, foreground_mean

    predictor = Predictor.load(run_dir, device)
    scores = []
    for image, mask in zip(test.native.images, test.native.masks):
        frame = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
        pred = predictor.probabilities(frame, flip=flip).argmax(axis=0)
        scores.append(foreground_mean(dice_per_class(pred, mask, len(predictor.codes))))
    return float(np.mean(scores))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images")
    ap.add_argument("--masks")
    ap.add_argument("--generate", type=int, default=48, help="generated pairs when no folders are given")
    ap.add_argument("--seconds", type=float, default=60.0, help="training wall time per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="segstudio-bench-recipe-"))
    os.environ.setdefault("XDG_CACHE_HOME", str(tmp / "cache"))
    os.environ.setdefault("XDG_DATA_HOME", str(tmp / "data"))
    from segstudio.config import DataConfig
    from segstudio.data import load_dataset

    images, masks = (Path(args.images), Path(args.masks)) if args.images else generated(tmp / "gen", args.generate)
    tr_img, tr_msk, te_img, te_msk = hold_out(images, masks, tmp / "split")
    test, _ = load_dataset(DataConfig(images=str(te_img), masks=str(te_msk)), args.size, native_scale=1.0)
    print(f"{len(test)} held-out images; training budget {args.seconds:.0f} s per run; {args.arch} at {args.size} px, "
          f"batch {args.bs}, random-init encoder, device {args.device}, {os.cpu_count()} cores", flush=True)
    print(f"{'variant':<14} {'seed':>4} {'epochs':>6} {'train s':>8} {'Dice':>6}", flush=True)
    results: dict[str, list[float]] = {}
    for name in args.variants:
        for seed in args.seeds:
            probe_dir, _, probe_s = train(config(name, seed, 1, tr_img, tr_msk, tmp / "probe", args))
            epochs = max(1, int(args.seconds // max(probe_s, 1e-3)))
            run_dir, _, seconds = train(config(name, seed, epochs, tr_img, tr_msk, tmp / "runs", args))
            dice = held_out_dice(run_dir, test, VARIANTS[name][1], args.device)
            results.setdefault(name, []).append(dice)
            print(f"{name:<14} {seed:>4} {epochs:>6} {seconds:>8.1f} {dice:>6.3f}", flush=True)
    print("\nmean Dice at equal time (sd over seeds)")
    for name, dices in results.items():
        sd = statistics.stdev(dices) if len(dices) > 1 else 0.0
        print(f"{name:<14} {np.mean(dices):.3f} ({sd:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
