"""One fold against the ensemble of K folds on held-out images, with and without mirroring TTA,
and what each costs (a script, not a test).

A fold set is trained with the product's own command, one fold at a time (`segstudio train
--folds K --fold I`, as a cluster's array job runs it), then the held-out images are predicted
with each fold's model and with the fold set (`predict --model FOLDSET`: the folds' class
probabilities averaged), each with and without `--tta`. Dice is pooled over the held-out images
per foreground class (as tests/../shared/peers/nnunet_2d.py computes it, so nnU-Net can run on
the same split); the table gives its mean over the classes and the seconds each prediction took.

Data, one of:
  --scans ROOT --test-labels DIR  a Decathlon / nnU-Net root of 3-D scans (imagesTr + labelsTr
      train, imagesTs are held out, their labels in DIR): every --every-th axial slice with at
      least 5% labelled pixels becomes a PNG pair (intensities scaled per scan to its 0.5-99.5th
      percentiles), e.g. the MNI brain template with its grey and white matter maps;
  --train DIR --test DIR  folders of images/ and masks/ (mask values: class values, 0 background);
  --sample  the built-in sample, its last patient held out: a smoke run only (not real data).

    python tests/benchmarks/bench_folds.py --scans Task09_MNI --test-labels MNI_labelsTs   # 3 folds, 4 epochs, 64 px
    python tests/benchmarks/bench_folds.py --sample --folds 2 --epochs 1 --size 32          # smoke
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MIN_LABELLED = 0.05  # share of a slice's pixels with a label, for the slice to be used


def to_uint8(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.5))
    return (np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) * 255).astype(np.uint8)


def slice_scans(pairs: list[tuple[Path, Path]], out: Path, every: int) -> int:
    """PNG pairs in out/images and out/masks from axial slices of (scan, labels) files."""
    from segstudio.io.registry import read_scan, volume_stem

    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    n = 0
    for scan, labels in pairs:
        image, mask = read_scan(scan).array, read_scan(labels).array.astype(np.uint8)
        pixels = to_uint8(image)
        name = volume_stem(labels)
        for z in range(0, len(mask), every):
            if (mask[z] > 0).mean() >= MIN_LABELLED:
                Image.fromarray(pixels[z]).save(out / "images" / f"{name}_z{z:03d}.png")
                Image.fromarray(mask[z]).save(out / "masks" / f"{name}_z{z:03d}.png")
                n += 1
    return n


def from_scans(root: Path, test_labels: Path, work: Path, every: int) -> tuple[Path, Path, list[str]]:
    from segstudio.io.registry import volume_stem

    def pairs(images: Path, labels: Path) -> list[tuple[Path, Path]]:
        found = []
        for scan in sorted(images.glob("*.nii*")):
            case = volume_stem(scan).rsplit("_", 1)[0]  # nnU-Net: CASE_0000 is channel 0 of CASE
            if (labels / f"{case}.nii.gz").is_file():
                found.append((scan, labels / f"{case}.nii.gz"))
        return found

    train, test = pairs(root / "imagesTr", root / "labelsTr"), pairs(root / "imagesTs", test_labels)
    if not train or not test:
        raise SystemExit(f"need labelled scans in {root}/imagesTr and imagesTs (labels in {test_labels})")
    n_train = slice_scans(train, work / "train", every)
    n_test = slice_scans(test, work / "test", every)
    print(f"data: {n_train} training slices from {len(train)} scans, {n_test} held-out slices from "
          f"{len(test)} scans ({root.name}, every axial slice of {every})")
    names = json.loads((root / "dataset.json").read_text()).get("labels", {}) if (root / "dataset.json").is_file() else {}
    classes = [names[k] for k in sorted(names, key=int) if int(k) > 0]
    return work / "train", work / "test", classes


def from_sample(work: Path) -> tuple[Path, Path, list[str]]:
    from segstudio.data import sample_dataset

    images, masks = sample_dataset(work / "sample")
    files = sorted(images.iterdir())
    last = files[-1].stem.rsplit("_", 1)[0]  # phantom_NN_SSS: the last patient is held out
    for split, keep in (("train", lambda s: not s.startswith(last)), ("test", lambda s: s.startswith(last))):
        for sub, folder in (("images", images), ("masks", masks)):
            (work / split / sub).mkdir(parents=True)
            for f in folder.iterdir():
                if keep(f.stem):
                    shutil.copy(f, work / split / sub / f.name)
    return work / "train", work / "test", []


def class_values(mask_dir: Path) -> list[int]:
    values: set[int] = set()
    for m in sorted(mask_dir.glob("*.png")):
        values |= set(np.unique(np.asarray(Image.open(m))).tolist())
    return sorted(values | {0})


def pooled_dice(pred_dir: Path, test: Path, values: list[int]) -> list[float]:
    """Dice per foreground class, pooled over the held-out images (predictions are class indices)."""
    inter, ps, gs = (np.zeros(len(values)) for _ in range(3))
    for g in sorted((test / "masks").glob("*.png")):
        truth = np.searchsorted(values, np.asarray(Image.open(g)))
        pred = np.asarray(Image.open(pred_dir / f"{g.stem}.png"))
        for c in range(1, len(values)):
            inter[c] += ((pred == c) & (truth == c)).sum()
            ps[c] += (pred == c).sum()
            gs[c] += (truth == c).sum()
    return [2 * inter[c] / max(ps[c] + gs[c], 1) for c in range(1, len(values))]


def train_folds(train: Path, work: Path, args) -> tuple[Path, list[float]]:
    """Train each fold with `segstudio train --folds K --fold I`; the fold set and each fold's seconds."""
    from segstudio.cli.main import main

    base = ["train", "--images", str(train / "images"), "--masks", str(train / "masks"), "--labels", "classes",
            "--folds", str(args.folds), "--epochs", str(args.epochs), "--size", str(args.size), "--arch", args.arch,
            "--no-pretrained", "--device", args.device, "--out", str(work / "runs"), "--name", "folds",
            "--no-metrics", "--input", "resize"]
    seconds = []
    for fold in range(args.folds):
        t = time.perf_counter()
        log = StringIO()
        with redirect_stdout(log):
            status = main([*base, "--fold", str(fold)])
        seconds.append(time.perf_counter() - t)
        if status:
            raise SystemExit(f"fold {fold} did not train (status {status}):\n{log.getvalue()[-2000:]}")
        last = [line for line in log.getvalue().splitlines() if line.startswith("finished")]
        print(f"fold {fold}: {seconds[-1]:.0f} s; {last[-1] if last else ''}", flush=True)
    return work / "runs" / "folds", seconds


def predict(model: Path, test: Path, out: Path, tta: bool, device: str) -> float:
    """Seconds to load `model` and predict the held-out images into `out`."""
    from segstudio.inference import Predictor

    t = time.perf_counter()
    predictor = Predictor.load(model, device=device)
    predictor.tta = tta
    report = predictor.predict_folder(test / "images", out)
    if report.problems:
        raise SystemExit(f"{model}: {report.problems[:3]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=Path, help="a Decathlon / nnU-Net root of 3-D scans")
    ap.add_argument("--test-labels", type=Path, help="with --scans: the labels of its imagesTs")
    ap.add_argument("--every", type=int, default=4, help="with --scans: every n-th axial slice")
    ap.add_argument("--train", type=Path)
    ap.add_argument("--test", type=Path)
    ap.add_argument("--sample", action="store_true", help="the built-in sample (a smoke run, not real data)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    args = ap.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_folds_"))
    try:
        if args.sample:
            train, test, classes = from_sample(work)
        elif args.scans:
            train, test, classes = from_scans(args.scans, args.test_labels or args.scans / "labelsTs", work, args.every)
        elif args.train and args.test:
            train, test, classes = args.train, args.test, []
        else:
            ap.error("give --scans ROOT --test-labels DIR, --train and --test, or --sample")
        values = class_values(test / "masks")
        classes = classes or [str(v) for v in values[1:]]
        n_test = len(list((test / "images").iterdir()))
        print(f"{args.folds} folds, {args.epochs} epochs at {args.size} px, {args.arch}, random encoder, "
              f"device {args.device}; {n_test} held-out images", flush=True)

        foldset, train_s = train_folds(train, work, args)
        rows = []  # (model, tta, dice per class, seconds)
        for tta in (False, True):
            for name, model in [*((f"fold {f}", foldset / f"fold_{f}") for f in range(args.folds)),
                                (f"ensemble of {args.folds}", foldset)]:
                out = work / "pred" / f"{name.replace(' ', '_')}_{'tta' if tta else 'plain'}"
                seconds = predict(model, test, out, tta, args.device)
                rows.append((name, tta, pooled_dice(out, test, values), seconds))
        report(rows, classes, train_s, n_test, args.folds)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def report(rows, classes: list[str], train_s: list[float], n_test: int, k: int) -> None:
    print(f"\nheld-out Dice (pooled over {n_test} images) and prediction time (model loading included)\n")
    print(f"| model | TTA | {' | '.join(classes)} | mean Dice | predict s | s/image |")
    print("|---|---|" + "---|" * len(classes) + "---|---|---|")
    for name, tta, dice, seconds in rows:
        print(f"| {name} | {'yes' if tta else 'no'} | {' | '.join(f'{d:.3f}' for d in dice)} | "
              f"{np.mean(dice):.3f} | {seconds:.1f} | {seconds / n_test:.3f} |")
    print()
    for tta in (False, True):
        folds = [r for r in rows if r[1] == tta and r[0].startswith("fold")]
        ens = next(r for r in rows if r[1] == tta and r[0].startswith("ensemble"))
        mean = [float(np.mean(r[2])) for r in folds]
        one_s = float(np.mean([r[3] for r in folds]))
        print(f"{'with' if tta else 'without'} TTA: one fold {np.mean(mean):.3f} (folds {min(mean):.3f}-"
              f"{max(mean):.3f}), ensemble {np.mean(ens[2]):.3f} ({np.mean(ens[2]) - np.mean(mean):+.3f}); "
              f"ensemble predict time {ens[3] / one_s:.2f}x one fold's")
    plain = next(r for r in rows if not r[1] and r[0].startswith("ensemble"))
    tta = next(r for r in rows if r[1] and r[0].startswith("ensemble"))
    print(f"ensemble + TTA vs one fold without: {np.mean(tta[2]) - np.mean([np.mean(r[2]) for r in rows if not r[1] and r[0].startswith('fold')]):+.3f} "
          f"Dice, {tta[3] / np.mean([r[3] for r in rows if not r[1] and r[0].startswith('fold')]):.2f}x the predict time "
          f"(ensemble with TTA vs without: {tta[3] / plain[3]:.2f}x)")
    print(f"training: {' + '.join(f'{s:.0f}' for s in train_s)} = {sum(train_s):.0f} s for {k} folds "
          f"({sum(train_s) / np.mean(train_s):.1f}x one fold; each fold trains on {k - 1}/{k} of the images)")


if __name__ == "__main__":
    main()
