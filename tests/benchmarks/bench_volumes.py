"""Loading 3-D scans at scale: first and cached load time, peak memory, and training images/s from
the memory-mapped slice cache against the same slices held in memory.

    .venv/bin/python tests/benchmarks/bench_volumes.py --n 24 --slices 100 --xy 512 --size 256

Writes `--n` synthetic phantom CT scans (`--xy` x `--xy` x about `--slices`, int16 NIfTI, labels
liver/kidney) into a Decathlon layout under `--root` (kept and reused), then runs each phase in a
fresh process, so each peak RSS is that phase's own:
  build   load_dataset on a cold cache (reads every scan, writes the memory-mapped slices)
  cached  load_dataset again (opens the cache)
  loader  one epoch of the training loader (gather, augmentation, normalisation) over the
          memory-mapped cache, then over the same arrays copied into memory
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def make_scans(root: Path, n: int, slices: int, xy: int) -> Path:
    """A Decathlon layout of phantom CT scans (written once; kept under `root`)."""
    import nibabel as nib

    marker = root / f"COMPLETE-{n}-{slices}-{xy}"
    if marker.is_file():
        return root
    rng = np.random.default_rng(0)
    (root / "imagesTr").mkdir(parents=True, exist_ok=True)
    (root / "labelsTr").mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver", "2": "kidney"},
                                                   "modality": {"0": "CT"}}))
    for i in range(n):
        z = int(slices * rng.uniform(0.8, 1.2))
        zz, yy, xx = np.ogrid[:z, :xy, :xy]
        body = ((yy - xy / 2) / (0.35 * xy)) ** 2 + ((xx - xy / 2) / (0.42 * xy)) ** 2 <= 1
        liver = ((zz - 0.6 * z) / (0.25 * z)) ** 2 + ((yy - 0.45 * xy) / (0.12 * xy)) ** 2 \
            + ((xx - 0.38 * xy) / (0.14 * xy)) ** 2 <= 1
        kidney = ((zz - 0.35 * z) / (0.12 * z)) ** 2 + ((yy - 0.6 * xy) / (0.05 * xy)) ** 2 \
            + ((xx - 0.65 * xy) / (0.05 * xy)) ** 2 <= 1
        hu = np.full((z, xy, xy), -1000, np.int16)
        hu[np.broadcast_to(body, hu.shape)] = 0
        hu[liver] = 80
        hu[kidney & ~liver] = 160
        hu += rng.integers(-8, 9, hu.shape, dtype=np.int16)
        labels = np.zeros(hu.shape, np.uint8)
        labels[liver] = 1
        labels[kidney & ~liver] = 2
        affine = np.diag([-0.8, -0.8, 2.5, 1.0])  # canonical (Z, Y, X) is stored as (X, Y, Z)
        nib.save(nib.Nifti1Image(hu.transpose(2, 1, 0)[::-1, ::-1], affine),
                 root / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
        nib.save(nib.Nifti1Image(labels.transpose(2, 1, 0)[::-1, ::-1], affine),
                 root / "labelsTr" / f"case_{i:03d}.nii.gz")
        print(f"  wrote case {i + 1}/{n} ({z} slices)", flush=True)
    marker.write_text("")
    return root


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def phase(args) -> dict:
    from segstudio.config import DataConfig
    from segstudio.data import load_dataset
    from segstudio.data import volume_dataset  # noqa: F401  (its libraries: the baseline)

    cfg = DataConfig(str(args.root))
    baseline = peak_rss_mb()
    t0 = time.perf_counter()
    data, report = load_dataset(cfg, args.size)
    out = {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_rss_mb(), "baseline_mb": baseline,
           "slices": len(data),
           "scans": len(data.volumes), "cache_mb": (data.images.nbytes + data.masks.nbytes) / 2**20}
    if args.phase == "loader":
        out.update(loader_rates(data, args))
    return out


def loader_rates(data, args) -> dict:
    """Training images/s of one epoch from the memory map, then from in-memory copies."""
    import torch
    from dataclasses import replace

    from segstudio.training.loaders import build_dataloaders, dataset_stats

    stats = dataset_stats(data)
    in_memory = replace(data, images=np.array(data.images), masks=np.array(data.masks))
    rates = {"memmap_images_per_s": 0.0, "memory_images_per_s": 0.0}
    for kind in ("memmap", "memory") * 2:  # alternated, best of two each
        d = data if kind == "memmap" else in_memory
        dls = build_dataloaders(d, args.bs, torch.device("cpu"), augment=True, stats=stats, seed=0,
                                empty_share=1.0)
        batches = iter(dls.train)
        next(batches)  # the first batch builds the transforms' state: not timed
        n, t0 = 0, time.perf_counter()
        for x, y in batches:
            n += len(x)
            if n >= args.images:
                break
        rates[f"{kind}_images_per_s"] = max(rates[f"{kind}_images_per_s"], n / (time.perf_counter() - t0))
    rates["loader_peak_rss_mb"] = peak_rss_mb()
    return rates


def run_phase(name: str, args, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--root", str(args.root), "--size", str(args.size),
           "--bs", str(args.bs), "--images", str(args.images)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=24)
    p.add_argument("--slices", type=int, default=100)
    p.add_argument("--xy", type=int, default=512)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--bs", type=int, default=16)
    p.add_argument("--images", type=int, default=800, help="images per loader measurement")
    p.add_argument("--root", type=Path, help="where the scans are written (kept and reused)")
    p.add_argument("--phase", choices=["build", "cached", "loader"])
    args = p.parse_args()
    if args.phase:
        print(json.dumps(phase(args)))
        return 0
    args.root = args.root or Path(tempfile.gettempdir()) / f"segstudio-bench-volumes-{args.n}-{args.slices}-{args.xy}"
    print(f"scans: {args.n} x {args.xy}x{args.xy}x~{args.slices} under {args.root}", flush=True)
    make_scans(args.root, args.n, args.slices, args.xy)
    one_scan_mb = args.xy * args.xy * args.slices * 4 / 2**20  # one scan as float32 in memory
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache}  # a cold cache for the first load
        build = run_phase("build", args, env)
        cached = run_phase("cached", args, env)
        loader = run_phase("loader", args, env)
    print(f"scans {build['scans']}, slices {build['slices']}, cache {build['cache_mb']:.0f} MB on disk "
          f"at {args.size} px; one scan in memory (float32) {one_scan_mb:.0f} MB")
    extra = build["peak_rss_mb"] - build["baseline_mb"]
    print(f"first load   {build['seconds']:7.1f} s   peak RSS {build['peak_rss_mb']:6.0f} MB: "
          f"{build['baseline_mb']:.0f} MB of libraries + {extra:.0f} MB ({extra / one_scan_mb:.1f}x one scan)")
    print(f"cached load  {cached['seconds']:7.2f} s   peak RSS {cached['peak_rss_mb']:6.0f} MB "
          f"({build['seconds'] / max(cached['seconds'], 1e-6):.0f}x faster)")
    ratio = loader["memmap_images_per_s"] / loader["memory_images_per_s"]
    print(f"training loader: memory-mapped {loader['memmap_images_per_s']:.0f} img/s, in memory "
          f"{loader['memory_images_per_s']:.0f} img/s: ratio {ratio:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
