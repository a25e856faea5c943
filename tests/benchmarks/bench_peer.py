"""segstudio against nnU-Net 2d (the peer, `../shared/peers/nnunet_2d.py`) on the same 2-D PNG split
at equal wall time (a script, not a test).

Each pair trains nnU-Net first (epochs x iterations of `--epochs` / `--iters`, through nnunet_2d.py
in the peer's own venv), then `segstudio train` with `--time-budget` set to nnU-Net's training
time in that pair less segstudio's start-up (imports, timed once; or `--budget`), so both sides get the same wall time on the same machine one
after the other; pairs repeat (`--repeats`), so machine load hits both alike. Each model
predicts TEST/images with and without mirroring TTA (nnU-Net's mirroring; `segstudio predict
--tta`), scored the same way for both: the Dice of each foreground class pooled over the test
images, then the mean over classes (nnunet_2d.py's figure). The load average (`uptime`) and the
CPU time other processes used during each training are printed with each run.

The split (`--make-split DIR`, needs nilearn: run it with the peer venv's python): axial slices of
the MNI152 2009 template that nilearn ships (2 mm, 99 x 117 px), labelled by its grey and white
matter maps (the most probable of background, grey, white: values 0, 1, 2). The slices with brain
are cut into blocks of 12 by position: 6 train, 2 left out, 2 test, 2 left out, so no test slice
has a training neighbour (the nearest is 3 slices, 6 mm, away).

    /work/peer-venv/bin/python tests/benchmarks/bench_peer.py --make-split /tmp/mni_split
    .venv/bin/python tests/benchmarks/bench_peer.py --split /tmp/mni_split --nnunet-python /work/peer-venv/bin/python \\
        --epochs 5 --iters 25 --repeats 3 [--size 128]
    .venv/bin/python tests/benchmarks/bench_peer.py --smoke     # tiny generated split, segstudio only (no nnU-Net)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT.parent / "shared" / "peers" / "nnunet_2d.py"
BLOCK = ("train",) * 6 + ("gap",) * 2 + ("test",) * 2 + ("gap",) * 2


def make_mni_split(out: Path) -> None:
    """TRAIN and TEST folders (images/, masks/) of axial MNI152 slices, split by position."""
    from nilearn import datasets

    t1, gm, wm = (datasets.load_mni152_template(resolution=2), datasets.load_mni152_gm_template(resolution=2),
                  datasets.load_mni152_wm_template(resolution=2))
    image, grey, white = (np.asarray(v.get_fdata(), np.float32) for v in (t1, gm, wm))
    labels = np.argmax(np.stack([np.clip(1 - grey - white, 0, 1), grey, white]), axis=0).astype(np.uint8)
    image = np.clip(np.round(255 * image / image.max()), 0, 255).astype(np.uint8)
    area = (labels > 0).sum(axis=(0, 1))
    slices = np.nonzero(area >= 0.15 * area.max())[0]  # slices with at least 15% of the largest brain section
    for part in ("train", "test"):
        for sub in ("images", "masks"):
            (out / part / sub).mkdir(parents=True, exist_ok=True)
    for k, z in enumerate(slices):
        part = BLOCK[k % len(BLOCK)]
        if part == "gap":
            continue
        name = f"mni_z{z:03d}.png"  # anterior up, as radiologists look at an axial slice
        Image.fromarray(np.rot90(image[:, :, z]).copy()).save(out / part / "images" / name)
        Image.fromarray(np.rot90(labels[:, :, z]).copy()).save(out / part / "masks" / name)
    n = {p: len(list((out / p / "images").glob("*.png"))) for p in ("train", "test")}
    print(f"MNI split in {out}: {n['train']} train, {n['test']} test slices of {image.shape[0]} x {image.shape[1]} px (w x h) "
          f"(brain slices z {slices[0]}-{slices[-1]}, blocks {'/'.join(BLOCK)})")


def make_tiny_split(out: Path, n_train: int = 8, n_test: int = 2, side: int = 48) -> None:
    """A generated split for the smoke run: discs (class 1) with bright cores (class 2) on noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:side, :side]
    for i in range(n_train + n_test):
        part = "train" if i < n_train else "test"
        for sub in ("images", "masks"):
            (out / part / sub).mkdir(parents=True, exist_ok=True)
        cy, cx = rng.uniform(side / 3, 2 * side / 3, 2)
        r = np.hypot(yy - cy, xx - cx)
        mask = np.where(r < side / 8, 2, np.where(r < side / 4, 1, 0)).astype(np.uint8)
        image = np.clip(60 + 70 * mask + rng.normal(0, 10, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(out / part / "images" / f"t{i:02d}.png")
        Image.fromarray(mask).save(out / part / "masks" / f"t{i:02d}.png")


def pooled_dice(pred_dir: Path, masks_dir: Path) -> list[float]:
    """Dice per foreground class pooled over the test images (masks and predictions hold class indices)."""
    inter, pred_sum, true_sum = {}, {}, {}
    for truth_path in sorted(Path(masks_dir).glob("*.png")):
        truth = np.array(Image.open(truth_path))
        pred = np.array(Image.open(Path(pred_dir) / truth_path.name))
        for c in range(1, int(truth.max()) + 1):
            inter[c] = inter.get(c, 0) + int(((pred == c) & (truth == c)).sum())
            pred_sum[c] = pred_sum.get(c, 0) + int((pred == c).sum())
            true_sum[c] = true_sum.get(c, 0) + int((truth == c).sum())
    return [2 * inter[c] / max(pred_sum[c] + true_sum[c], 1) for c in sorted(inter)]


def load_average() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def cpu_mark() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of our finished children)."""
    import resource

    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return busy, ru.ru_utime + ru.ru_stime


def run(cmd: list[str], log: Path, env: dict | None = None) -> tuple[float, str, float, float]:
    """Run cmd, log its output; (wall seconds, output, other processes' busy cores meanwhile, its CPU seconds)."""
    m0, t = cpu_mark(), time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    seconds, m1 = time.perf_counter() - t, cpu_mark()
    log.write_text(proc.stdout)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])}... failed (rc={proc.returncode}), see {log}:\n{proc.stdout[-3000:]}")
    other = max(0.0, (m1[0] - m0[0]) - (m1[1] - m0[1])) / seconds
    return seconds, proc.stdout, other, m1[1] - m0[1]


def nnunet_pair_side(args, work: Path, split: Path) -> dict:
    """nnU-Net trained once through nnunet_2d.py (mirroring TTA), then predicted again without TTA."""
    load = load_average()
    cmd = [args.nnunet_python, str(PEER), str(work), "--train", str(split / "train"), "--test", str(split / "test"),
           "--epochs", str(args.epochs), "--iters", str(args.iters), "--threads", str(args.threads)]
    _, out, _, _ = run(cmd, work.parent / f"{work.name}.log")
    last = dict(re.findall(r"(\w+)=(\[[^]]*\]|\S+)", out.strip().splitlines()[-1]))
    base = work / "nnunet"
    env = dict(os.environ, nnUNet_raw=str(base / "nnUNet_raw"), nnUNet_preprocessed=str(base / "nnUNet_preprocessed"),
               nnUNet_results=str(base / "nnUNet_results"), nnUNet_extTrainer=str(base / "ext_trainer"),
               OMP_NUM_THREADS=str(args.threads), nnUNet_compile="f")
    bindir = Path(args.nnunet_python).parent
    no_tta = work / "nnunet_pred_no_tta"
    s_pred, *_ = run([str(bindir / "nnUNetv2_predict"), "-i", str(base / "nnUNet_raw/Dataset501_Peer/imagesTs"),
                        "-o", str(no_tta), "-d", "501", "-c", "2d", "-f", "all", "-tr", "nnUNetTrainer_Peer",
                        "-device", "cpu", "-npp", "1", "-nps", "1", "--disable_progress_bar", "--disable_tta"],
                       work.parent / f"{work.name}_predict.log", env)
    return {"side": "nnU-Net", "s_train": float(last["s_train"]), "detail": f"{args.epochs}x{args.iters} it",
            "dice_tta": float(last["dice"]), "dice": float(np.mean(pooled_dice(no_tta, split / "test" / "masks"))),
            "per_class_tta": last["per_class"], "s_pred_tta": float(last["s_pred"]), "s_pred": s_pred,
            "load": load, "other": float(last["other_cores"].split("/")[0]), "cpu": float(last["cpu_train"])}


def segstudio_side(args, work: Path, split: Path, budget: float, seed: int) -> dict:
    """`segstudio train` with --time-budget (random encoder), predicted with and without --tta."""
    load = load_average()
    seg = [sys.executable, "-m", "segstudio"]
    train = [*seg, "train", "--images", str(split / "train" / "images"), "--masks", str(split / "train" / "masks"),
             "--labels", "classes", "--no-pretrained", "--device", "cpu", "--seed", str(seed), "--out", str(work),
             "--name", "run", "--no-metrics", "--time-budget", f"{budget:.0f}", *args.segstudio_args]
    if args.size:
        train += ["--size", str(args.size)]
    s_train, out, other, cpu = run(train, work.parent / f"{work.name}.log")
    run_dir = Path(re.search(r"run folder: (.+)", out).group(1).strip())
    epochs = re.findall(r"epoch (\d+)/(\d+)", out)
    best = re.search(r"best dice ([0-9.]+)", out)
    dice, s_pred = {}, {}
    for tta in (False, True):
        pred = work / ("pred_tta" if tta else "pred")
        s_pred[tta], *_ = run([*seg, "predict", "--model", str(run_dir), "--images", str(split / "test" / "images"),
                                 "--out", str(pred), "--device", "cpu", *(["--tta"] if tta else [])],
                                work.parent / f"{work.name}_predict{'_tta' if tta else ''}.log")
        dice[tta] = pooled_dice(pred, split / "test" / "masks")
    return {"side": "segstudio", "s_train": s_train, "detail": f"{epochs[-1][0] if epochs else 0} ep",
            "dice_tta": float(np.mean(dice[True])), "dice": float(np.mean(dice[False])),
            "per_class_tta": str([round(d, 3) for d in dice[True]]), "s_pred_tta": s_pred[True],
            "s_pred": s_pred[False], "load": load, "other": other, "cpu": cpu,
            "valid": float(best.group(1)) if best else float("nan")}


def table(rows: list[dict]) -> list[str]:
    lines = ["| pair | side | train s (CPU s) | schedule | Dice | Dice with TTA | per class with TTA (grey, white) | "
             "predict s (TTA) | load 1/5/15 min before | other cores busy |", "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['side']} | {r['s_train']:.0f} ({r['cpu']:.0f}) | {r['detail']} | {r['dice']:.3f} | "
                     f"{r['dice_tta']:.3f} | {r['per_class_tta']} | {r['s_pred']:.0f} ({r['s_pred_tta']:.0f}) | "
                     f"{r['load']} | {r['other']:.2f} |")
    for side in ("nnU-Net", "segstudio"):
        mine = [r for r in rows if r["side"] == side]
        if mine:
            d, dt, s = (np.array([r[k] for r in mine]) for k in ("dice", "dice_tta", "s_train"))
            lines.append(f"{side}: Dice {d.mean():.3f} ({d.min():.3f}-{d.max():.3f}), with TTA {dt.mean():.3f} "
                         f"({dt.min():.3f}-{dt.max():.3f}), train {s.mean():.0f} s, {len(mine)} run(s)")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--make-split", type=Path, metavar="DIR", help="write the MNI split to DIR and stop (nilearn)")
    ap.add_argument("--split", type=Path, help="a folder with train/ and test/ (each images/ and masks/)")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--nnunet-python", default="", help="python of the venv with nnunetv2 (none: segstudio only)")
    ap.add_argument("--epochs", type=int, default=5, help="nnU-Net epochs")
    ap.add_argument("--iters", type=int, default=25, help="nnU-Net training iterations per epoch")
    ap.add_argument("--threads", type=int, default=2, help="nnU-Net's torch threads")
    ap.add_argument("--budget", type=float, default=0, help="segstudio's --time-budget (default: nnU-Net's train s)")
    ap.add_argument("--size", type=int, default=0, help="segstudio --size (default: segstudio's own)")
    ap.add_argument("--repeats", type=int, default=1, help="pairs, run one after the other")
    ap.add_argument("--segstudio-args", nargs=argparse.REMAINDER, default=[],
                    help="further `segstudio train` options (last on the line)")
    ap.add_argument("--smoke", action="store_true", help="a tiny generated split, segstudio only: checks it runs")
    args = ap.parse_args()
    if args.make_split:
        make_mni_split(args.make_split)
        return 0
    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-peer-{os.getpid()}"
    if args.smoke:
        args.split, args.nnunet_python, args.budget, args.size = work / "split", "", 10, 32
        args.segstudio_args = ["--bs", "4"]
        make_tiny_split(args.split)
    if not args.split:
        ap.error("give --split (make one with --make-split) or --smoke")
    if not args.nnunet_python and not args.budget:
        ap.error("without --nnunet-python give --budget SECONDS")
    print(f"split {args.split}: {len(list((args.split / 'train' / 'images').glob('*.png')))} train, "
          f"{len(list((args.split / 'test' / 'images').glob('*.png')))} test images; {os.cpu_count()} cores; "
          f"nnU-Net {'via ' + args.nnunet_python if args.nnunet_python else 'not run'}", flush=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import segstudio.cli.main, segstudio.training.session"], check=True, cwd=ROOT)
    start_up = time.perf_counter() - t  # outside segstudio's budget (it counts from the session's start)
    rows = []
    for pair in range(args.repeats):
        budget = args.budget
        if args.nnunet_python:
            r = nnunet_pair_side(args, work / f"nnunet{pair}", args.split)
            rows.append({"pair": pair, **r})
            print(f"pair {pair} nnU-Net: {r}", flush=True)
            budget = budget or max(1.0, r["s_train"] - start_up)
        r = segstudio_side(args, work / f"segstudio{pair}", args.split, budget, seed=pair)
        rows.append({"pair": pair, **r})
        print(f"pair {pair} segstudio (budget {budget:.0f} s): {r}", flush=True)
    print("\n".join(table(rows)))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
