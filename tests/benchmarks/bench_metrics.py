"""`segstudio evaluate`'s metrics against DeepMind's surface-distance: time per case and agreement.

    .venv/bin/python tests/benchmarks/bench_metrics.py                                 # the issue's size
    .venv/bin/python tests/benchmarks/bench_metrics.py --cases 2 --shape 64 64 40      # a smoke run

Writes `--cases` pairs of phantom label volumes (`--shape` X Y Z voxels at `--spacing` X Y Z mm,
uint8 NIfTI; three classes: a large lobed organ, two small ones, and in the prediction shifted
and resized boundaries plus a stray false-positive blob) under `--root` (kept and reused), then
times, end to end (reading the files included):
  segstudio        evaluate_folders in this process (workers=1), and with `--workers` processes
  surface-distance each pair read with nibabel, then per class compute_surface_distances and its
                   Dice, surface Dice at the tolerance, 95% robust Hausdorff and average distances
and prints seconds per case, the ratio to surface-distance, and the largest difference between
the two sides' numbers (ASSD: surface-distance's two directed averages pooled by area).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def ellipsoid(labels: np.ndarray, centre, radii, value: int, rng=None, lobes: int = 0) -> None:
    """Paint an ellipsoid (optionally with `lobes` random bumps) of `value` into (Z, Y, X)
    `labels`, computed in its bounding box only. Centre and radii in voxels."""
    lo = [max(0, int(c - r * 1.3) - 1) for c, r in zip(centre, radii)]
    hi = [min(n, int(c + r * 1.3) + 2) for c, r, n in zip(centre, radii, labels.shape)]
    if any(a >= b for a, b in zip(lo, hi)):
        return
    z, y, x = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    d = ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((x - centre[2]) / radii[2]) ** 2
    if lobes:
        angle_y, angle_x = np.arctan2(y - centre[1], x - centre[2]), np.arctan2(z - centre[0], x - centre[2])
        for _ in range(lobes):
            k, phase, amp = rng.integers(2, 6), rng.uniform(0, 2 * np.pi), rng.uniform(0.03, 0.08)
            d = d * (1 + amp * np.sin(k * angle_y + phase) * np.cos(k * angle_x))
    box = labels[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    box[d <= 1] = value


def phantom_pair(shape_zyx, rng) -> tuple[np.ndarray, np.ndarray]:
    """(truth, prediction) uint8 label volumes with classes 1-3."""
    nz, ny, nx = shape_zyx
    truth = np.zeros(shape_zyx, np.uint8)
    pred = np.zeros(shape_zyx, np.uint8)
    organs = [  # (centre, radii) as shares of the volume's size, class
        ((0.55, 0.45, 0.35), (0.28, 0.17, 0.2), 1),
        ((0.4, 0.6, 0.68), (0.12, 0.05, 0.05), 2),
        ((0.4, 0.6, 0.3), (0.12, 0.05, 0.05), 2),
        ((0.6, 0.35, 0.7), (0.1, 0.08, 0.07), 3),
    ]
    size = np.array(shape_zyx, float)
    for centre, radii, value in organs:
        c, r = np.array(centre) * size, np.maximum(np.array(radii) * size, 2)
        lobes = 3 if value == 1 else 0
        seed = rng.integers(1 << 30)
        ellipsoid(truth, c, r, value, np.random.default_rng(seed), lobes)
        ellipsoid(pred, c + rng.normal(0, 1.0, 3), r * rng.uniform(0.95, 1.05, 3), value,
                  np.random.default_rng(seed), lobes)
    stray = np.array([0.2, 0.8, 0.8]) * size
    ellipsoid(pred, stray, np.maximum(0.02 * size, 1.5), 3)
    return truth, pred


def write_cases(root: Path, n: int, shape_xyz, spacing_xyz) -> tuple[Path, Path]:
    """truth/ and pred/ folders of `n` NIfTI pairs (written once per size; kept under `root`)."""
    import nibabel as nib

    tag = f"{n}-{'x'.join(map(str, shape_xyz))}-{'x'.join(map(str, spacing_xyz))}"
    truth_dir, pred_dir = root / tag / "truth", root / tag / "pred"
    marker = root / tag / "COMPLETE"
    if marker.is_file():
        return pred_dir, truth_dir
    truth_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    affine = np.diag([*spacing_xyz, 1.0])
    for i in range(n):
        truth, pred = phantom_pair(tuple(reversed(shape_xyz)), rng)
        for folder, labels in ((truth_dir, truth), (pred_dir, pred)):
            img = nib.Nifti1Image(np.ascontiguousarray(labels.transpose(2, 1, 0)), affine)  # (x, y, z)
            nib.save(img, folder / f"case_{i:03d}.nii.gz")
        print(f"wrote case {i + 1}/{n}", file=sys.stderr)
    marker.touch()
    return pred_dir, truth_dir


def reference(pred_dir: Path, truth_dir: Path, tolerance: float) -> tuple[float, dict]:
    """(seconds, {(case, class): {metric: value}}) with DeepMind's surface-distance."""
    import nibabel as nib
    import surface_distance as sd

    out = {}
    start = time.perf_counter()
    for truth_path in sorted(truth_dir.glob("*.nii.gz")):
        truth_img, pred_img = nib.load(truth_path), nib.load(pred_dir / truth_path.name)
        truth, pred = np.asanyarray(truth_img.dataobj), np.asanyarray(pred_img.dataobj)
        spacing = tuple(float(s) for s in truth_img.header.get_zooms()[:3])
        case = truth_path.name[:-len(".nii.gz")]
        for c in sorted((set(np.unique(truth)) | set(np.unique(pred))) - {0}):
            t, p = truth == c, pred == c
            dist = sd.compute_surface_distances(t, p, spacing)
            to_pred, to_truth = sd.compute_average_surface_distance(dist)
            a_t, a_p = dist["surfel_areas_gt"].sum(), dist["surfel_areas_pred"].sum()
            out[(case, int(c))] = {
                "dice": sd.compute_dice_coefficient(t, p),
                "nsd": sd.compute_surface_dice_at_tolerance(dist, tolerance),
                "hd95": sd.compute_robust_hausdorff(dist, 95),
                "assd": (to_pred * a_t + to_truth * a_p) / (a_t + a_p)}
    return time.perf_counter() - start, out


def ours(pred_dir: Path, truth_dir: Path, tolerance: float, workers: int, out_dir: Path) -> tuple[float, dict]:
    from segstudio.evaluation.evaluate import CSV_NAME, evaluate_folders

    start = time.perf_counter()
    report = evaluate_folders(pred_dir, truth_dir, tolerance, out_dir=out_dir, workers=workers)
    seconds = time.perf_counter() - start
    assert not report.problems, report.problems
    assert (out_dir / CSV_NAME).is_file()
    return seconds, {(r.case, r.label): {m: getattr(r, m) for m in ("dice", "nsd", "hd95", "assd")}
                     for r in report.rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--shape", type=int, nargs=3, default=[512, 512, 200], metavar=("X", "Y", "Z"))
    ap.add_argument("--spacing", type=float, nargs=3, default=[0.8, 0.8, 2.5], metavar=("X", "Y", "Z"))
    ap.add_argument("--tolerance", type=float, default=1.0, help="NSD tolerance in mm")
    ap.add_argument("--workers", type=int, default=2, help="processes for the parallel segstudio row")
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "segstudio-bench-metrics")
    args = ap.parse_args()
    pred_dir, truth_dir = write_cases(args.root, args.cases, args.shape, args.spacing)
    n = args.cases
    t_ref, ref = reference(pred_dir, truth_dir, args.tolerance)
    t_one, one = ours(pred_dir, truth_dir, args.tolerance, 1, pred_dir.parent / "out-1")
    t_par, par = ours(pred_dir, truth_dir, args.tolerance, args.workers, pred_dir.parent / f"out-{args.workers}")
    print(f"{n} cases of {'x'.join(map(str, args.shape))} voxels at {args.spacing} mm, 3 classes, "
          f"tolerance {args.tolerance} mm")
    print(f"{'':34} {'s/case':>8} {'vs surface-distance':>20}")
    print(f"{'surface-distance (1 process)':34} {t_ref / n:8.2f} {1.0:19.2f}x")
    print(f"{'segstudio (1 process)':34} {t_one / n:8.2f} {t_ref / t_one:19.2f}x")
    print(f"{f'segstudio ({args.workers} processes)':34} {t_par / n:8.2f} {t_ref / t_par:19.2f}x")
    assert set(ref) == set(one) == set(par), "the two sides scored different (case, class) pairs"
    for m in ("dice", "nsd", "hd95", "assd"):
        diff = max(abs(ref[k][m] - one[k][m]) for k in ref)
        print(f"largest |difference| in {m}: {diff:.2g}")
    same = all(one[k] == par[k] for k in one)
    print(f"1 process and {args.workers} processes wrote the same numbers: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
