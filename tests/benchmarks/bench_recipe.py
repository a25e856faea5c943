"""Quality at equal training time: full-resolution Dice on held-out images for recipe variants,
several seeds each, one run after the other (a script, not a test).

Each variant trains for about `--seconds` of wall time: a one-epoch probe (once per variant)
measures its epoch time, and each run gets the epochs that fit (one-cycle and poly need the
length in advance). Its Dice is that of the run's predictor (sliding window for patch runs; also
with mirrored test-time augmentation for the `--tta` variants) on held-out images at their own
resolution: per image, the mean over the foreground classes present in the image or the
prediction, then the mean over images.

Data: `--images/--masks` (your own; a third of the pairs is held out), or generated non-square
images with uneven light and noise, low-contrast ellipses and a rare small bright class.

    python tests/benchmarks/bench_recipe.py [--seconds 90] [--seeds 0 1 2] [--variants default poly ...]
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

# name: TrainConfig overrides on top of the product's defaults (input "auto", one-cycle Adam, batch 8)
VARIANTS = {
    "default": {},
    "resize": {"input_mode": "resize"},
    "poly": {"schedule": "poly"},
    "bs4": {"bs": 4},
    "bs16": {"bs": 16},
    "r34": {"arch": "resnet34"},
    "ds": {"deep_supervision": True},
    "instance": {"norm": "instance"},
    "batch": {"norm": "batch"},  # the default until this benchmark measured instance norm (README)
    "resize+ds": {"input_mode": "resize", "deep_supervision": True},
    "resize+instance": {"input_mode": "resize", "norm": "instance"},
    "resize+poly": {"input_mode": "resize", "schedule": "poly"},
}


def generated(root: Path, n: int, seed: int = 0, shape=(288, 432)) -> tuple[Path, Path]:
    """Non-square grey images with uneven illumination and noise: low-contrast ellipses of
    varied size (class 1) and one or two small bright blobs (class 2, rare)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    for i in range(n):
        mask = np.zeros(shape, np.uint8)
        for _ in range(rng.integers(3, 9)):
            cy, cx = rng.uniform(15, shape[0] - 15), rng.uniform(15, shape[1] - 15)
            a, b, t = rng.uniform(4, 16), rng.uniform(4, 16), rng.uniform(0, np.pi)
            u, v = (yy - cy) * np.cos(t) + (xx - cx) * np.sin(t), -(yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
            mask[(u / a) ** 2 + (v / b) ** 2 < 1] = 1
        for _ in range(rng.integers(1, 3)):
            cy, cx, r = rng.uniform(6, shape[0] - 6), rng.uniform(6, shape[1] - 6), rng.uniform(2, 4)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 2
        light = sum(rng.uniform(5, 20) * np.sin(xx / rng.uniform(40, 120) + rng.uniform(0, 6))
                    * np.cos(yy / rng.uniform(40, 120)) for _ in range(3))
        image = 90 + light + 30 * (mask == 1) + 55 * (mask == 2) + rng.normal(0, 16, shape)
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(images / f"img{i:03d}.png")
        Image.fromarray(mask * 127).save(masks / f"img{i:03d}.png")
    return images, masks


def hold_out(images: Path, masks: Path, root: Path) -> tuple[Path, Path, Path, Path]:
    """(train images, train masks, test images, test masks): every third pair held out (copies)."""
    folders = [root / n for n in ("train_images", "train_masks", "test_images", "test_masks")]
    for f in folders:
        f.mkdir(parents=True)
    mask_files = {p.stem: p for p in masks.iterdir() if p.is_file()}
    pairs = sorted((p, mask_files[p.stem]) for p in images.iterdir() if p.stem in mask_files)
    for k, (img, msk) in enumerate(pairs):
        dst = folders[2:] if k % 3 == 2 else folders[:2]
        shutil.copy2(img, dst[0] / img.name)
        shutil.copy2(msk, dst[1] / msk.name)
    return tuple(folders)


def config(name: str, seed: int, epochs: int, images: Path, masks: Path, out: Path, args):
    from segstudio.config import Arch, Device, TrainConfig

    overrides = VARIANTS[name]
    cfg = TrainConfig(arch=Arch(args.arch), pretrained=False, size=args.size, bs=args.bs, epochs=epochs,
                      seed=seed, device=Device(args.device), out_dir=str(out), preview_count=0)
    cfg.data.images, cfg.data.masks = str(images), str(masks)
    for key, value in overrides.items():
        setattr(cfg, key, type(getattr(cfg, key))(value))  # enums from their values
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
    frames = [image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0) for image in test.native.images]
    entries = ((k, frame.shape[:2], predictor.prepare(frame)) for k, frame in enumerate(frames))
    scores = []
    for k, probs in predictor.stream(entries, flip, batch=16):  # windows of all images, 16 a pass
        pred = probs.argmax(dim=0).cpu().numpy()
        scores.append(foreground_mean(dice_per_class(pred, test.native.masks[k], len(predictor.codes))))
    return float(np.mean(scores))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images")
    ap.add_argument("--masks")
    ap.add_argument("--generate", type=int, default=24, help="generated pairs when no folders are given")
    ap.add_argument("--baseline", default="default", help="the variant the others are compared with, seed by seed")
    ap.add_argument("--tta", nargs="*", default=["default"], help="variants also scored with flip TTA")
    ap.add_argument("--seconds", type=float, default=90.0, help="training wall time per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["default", "batch", "resize", "poly", "ds"], choices=list(VARIANTS))
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=64)
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
    print(f"{'variant':<10} {'seed':>4} {'epochs':>6} {'train s':>8} {'Dice':>6} {'+flip':>6}", flush=True)
    results: dict[str, list[tuple[float, float, float]]] = {}
    for name in args.variants:
        # one probe per variant (seed 0): its epoch time sets the epochs of every seed's run
        probe_dir, _, probe_s = train(config(name, 0, 1, tr_img, tr_msk, tmp / "probe", args))
        shutil.rmtree(probe_dir, ignore_errors=True)
        epochs = max(1, round(args.seconds / max(probe_s, 1e-3)))
        for seed in args.seeds:
            run_dir, _, seconds = train(config(name, seed, epochs, tr_img, tr_msk, tmp / "runs", args))
            dice = held_out_dice(run_dir, test, False, args.device)
            flip = held_out_dice(run_dir, test, True, args.device) if name in args.tta else float("nan")
            shutil.rmtree(run_dir, ignore_errors=True)  # ~0.5 GB each (the checkpoint)
            results.setdefault(name, []).append((seconds, dice, flip))
            print(f"{name:<10} {seed:>4} {epochs:>6} {seconds:>8.1f} {dice:>6.3f} {flip:>6.3f}", flush=True)
    print("\nheld-out Dice at equal training time: mean (sd over seeds)")
    base = [d for _, d, _ in results.get(args.baseline, [])]
    for name, rows in results.items():
        secs, dices, flips = zip(*rows)
        sd = statistics.stdev(dices) if len(dices) > 1 else 0.0
        paired = [d - b for d, b in zip(dices, base)]  # same seeds: the same split draws and init
        gain = (f"  {np.mean(paired):+.3f} vs {args.baseline} (per seed {', '.join(f'{p:+.3f}' for p in paired)})"
                if base and name != args.baseline else "")
        tta = f"  with flip TTA {np.mean(flips):.3f}" if name in args.tta else ""
        print(f"{name:<10} {np.mean(dices):.3f} ({sd:.3f})  {np.mean(secs):5.1f} s{gain}{tta}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
