"""Data-parallel scaling: training images/s of `segstudio train` with 1 and with N processes under
torchrun on the same machine, printed side by side with the scaling efficiency (a script, not a test).

Each launch trains the same synthetic dataset (smooth random shapes, `--images` slices) for
`--epochs` epochs; images/s is the training images of an epoch over its time, the median of the
epochs after the first (which includes start-up). Validation time is included in an epoch's time
(it is split over the ranks too). On a CPU, the comparison is at equal cores: one process with
every core's threads against N processes sharing them (torchrun gives each `OMP_NUM_THREADS` =
cores / N). On a GPU machine each process has a GPU: `--processes 1 8` measures efficiency per GPU.

    python tests/benchmarks/bench_ddp.py [--processes 1 2] [--images 192] [--size 128] [--bs 8]
                                         [--epochs 3] [--device auto] [--arch resnet18]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make_dataset(root: Path, n: int, side: int) -> tuple[Path, Path]:
    import numpy as np
    from PIL import Image

    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side]
    for i in range(n):
        mask = np.zeros((side, side), np.uint8)
        for label in (1, 2):
            cy, cx, r = rng.integers(side // 5, 4 * side // 5, 2).tolist() + [int(rng.integers(side // 12, side // 5))]
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = label
        image = (60 + 70 * mask + rng.normal(0, 20, mask.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(image).save(images / f"s{i:04d}.png")
        Image.fromarray(mask).save(masks / f"s{i:04d}.png")
    return images, masks


def launch(processes: int, images: Path, masks: Path, out: Path, args) -> dict:
    cores = os.cpu_count() or 1
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(max(1, cores // processes))}
    head = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
            if processes > 1 else [sys.executable])
    cmd = head + ["-m", "segstudio", "train", "--images", str(images), "--masks", str(masks), "--arch", args.arch,
                  "--no-pretrained", "--size", str(args.size), "--bs", str(args.bs), "--epochs", str(args.epochs),
                  "--device", args.device, "--out", str(out), "--name", f"p{processes}", "--seed", "0"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"launch with {processes} process(es) failed:\n{proc.stderr[-3000:]}")
    run = next(out.glob(f"*-p{processes}"))
    rows = json.loads((run / "metrics.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    n_train = round(args.images * (1 - cfg["data"]["valid_pct"]))
    seconds = statistics.median(r["seconds"] for r in rows[1:]) if len(rows) > 1 else rows[0]["seconds"]
    return {"processes": processes, "epoch_s": seconds, "images_per_s": n_train / seconds,
            "dice": max(r["dice_mean"] for r in rows)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--images", type=int, default=192)
    ap.add_argument("--side", type=int, default=128, help="image side in pixels (the files)")
    ap.add_argument("--size", type=int, default=128, help="training size")
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="segstudio-bench-ddp-"))
    os.environ.setdefault("XDG_CACHE_HOME", str(tmp / "cache"))
    os.environ.setdefault("XDG_DATA_HOME", str(tmp / "data"))
    images, masks = make_dataset(tmp / "data", args.images, args.side)
    results = [launch(p, images, masks, tmp / "runs", args) for p in args.processes]
    base = results[0]
    print(f"{args.images} slices, {args.size} px, batch {args.bs} (split over the processes), {args.arch}, "
          f"{args.epochs} epochs, device {args.device}, {os.cpu_count()} cores")
    print(f"{'processes':>9} {'epoch s':>8} {'images/s':>9} {'speed-up':>9} {'efficiency':>10} {'best Dice':>9}")
    for r in results:
        speedup = r["images_per_s"] / base["images_per_s"]
        efficiency = speedup / (r["processes"] / base["processes"])
        print(f"{r['processes']:>9} {r['epoch_s']:>8.2f} {r['images_per_s']:>9.1f} {speedup:>9.2f} "
              f"{efficiency:>10.2f} {r['dice']:>9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
