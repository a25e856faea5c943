"""Where a short CPU run's time goes: seconds per phase and the share of the whole (a script,
not a test), for a 2-D run on whole resized images, a run on native-resolution patches and a
2.5-D run on 3-D scans.

Each run is `TrainingSession.run` as the CLI and the app call it, on data read from folders
(so the dataset and its cache are built), followed by predicting with the saved model. The
phases are timed from outside the product: the functions the session calls are wrapped
(`load_dataset`, `build_learner`, the checkpoint, the best-model save, the metrics files, the
previews) and a fastai callback times each epoch's training steps and validation. Imports are
timed in a fresh interpreter. "other" is the rest of the run's wall time (events, the
config, the run's end). The checkpoint is written in a background thread: the training thread
pays the copy of the state and, at the end, the wait for the last write; the write itself is
shown below the table (it overlaps training). `--sync-checkpoints` writes it in the training
thread instead, as before the thread existed (the "before" of the README's table).

    python tests/benchmarks/bench_time_to_dice.py [--runs resize patches scans] [--epochs 2] [--size 64]
    python tests/benchmarks/bench_time_to_dice.py --sync-checkpoints   # checkpoints written between epochs
    python tests/benchmarks/bench_time_to_dice.py --smoke      # one epoch, tiny data (and --curve): a check that it runs

`--curve` measures held-out Dice against training time instead: one run per point (`--curve 2 4 8
16` epochs, or seconds of `--time-budget` with `--curve-unit seconds`) and seed, random encoder, on
a split with train/ and test/ folders (`bench_peer.py --make-split`: MNI slices), each run's
model scored on test/ (Dice per class pooled over the images, mean over classes; with and without
mirroring TTA). Wall and CPU seconds of each run are printed: on a shared machine the CPU seconds
(both cores busy: about twice the wall time of a quiet machine) are the steadier measure.

    python tests/benchmarks/bench_time_to_dice.py --curve 2 4 8 16 --split /tmp/mni_split --size 128 [--lr 1e-3]

`--step-profile` times one training step (forward, backward, Adam) of the network a run's plan
builds (`model.unet.build_unet`: resnet18, instance norm, 3 input channels, 3 classes) for each
full-resolution head width of `--heads` (0: fastai's own last_cross block; 32: the product's),
at `--size` and batch `--bs` (default 2), with forward time per top-level layer (the encoder,
each UnetBlock, the head) from forward hooks; then one optimiser step of fastai's Adam against the
fused AdamW the product uses.

    python tests/benchmarks/bench_time_to_dice.py --step-profile --size 128 [--heads 0 32 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

IMPORTS = "import segstudio.training.session, segstudio.inference.predictor"


def import_seconds() -> float:
    """Seconds to import the training and inference code in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); {IMPORTS}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


class Timings:
    """Seconds per phase, added up over a run."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    @contextmanager
    def phase(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t
            self.counts[name] += 1

    def wrap(self, owner, attr: str, name: str):
        """Replace owner.attr by a timed version; returns a function that puts it back."""
        real = getattr(owner, attr)

        def timed(*args, **kwargs):
            with self.phase(name):
                return real(*args, **kwargs)
        setattr(owner, attr, timed)
        return lambda: setattr(owner, attr, real)


def phase_callback(timings: Timings):
    from fastai.callback.core import Callback

    class PhaseTimer(Callback):
        order = -30  # before everything else in each event: brackets the other callbacks' work

        def before_train(self):
            self.t = time.perf_counter()

        def after_train(self):
            timings.seconds["training steps"] += time.perf_counter() - self.t
            timings.counts["training steps"] += 1

        def before_validate(self):
            self.t = time.perf_counter()

        def after_validate(self):
            timings.seconds["validation"] += time.perf_counter() - self.t
            timings.counts["validation"] += 1

    return PhaseTimer()


def instrumented_run(cfg, timings: Timings, sync_checkpoints: bool = False):
    """TrainingSession.run with its phases timed; returns (final event, events, seconds)."""
    from segstudio.runs import MetricsLog
    from segstudio.training import checkpoint, session as session_mod
    from segstudio.training.callbacks import EventReporter
    from segstudio.training.session import TrainingSession

    real_build = session_mod.build_learner

    def build(*args, **kwargs):
        with timings.phase("build learner"):
            built = real_build(*args, **kwargs)
        built.learn.add_cb(phase_callback(timings))
        return built

    restore = [timings.wrap(session_mod, "load_dataset", "dataset + cache"),
               timings.wrap(session_mod, "checkpoint_state", "checkpoint copies"),
               timings.wrap(checkpoint.CheckpointWriter, "wait", "checkpoint wait (end)"),
               timings.wrap(checkpoint, "write_checkpoint", "checkpoint writes (background)"),
               timings.wrap(session_mod, "save_model", "best-model saves"),
               timings.wrap(MetricsLog, "append", "metrics files"),
               timings.wrap(EventReporter, "_preview", "previews")]
    session_mod.build_learner = build
    if sync_checkpoints:  # as before the writer thread: each write between two epochs
        real_submit = checkpoint.CheckpointWriter.submit
        checkpoint.CheckpointWriter.submit = lambda self, run_dir, payload: checkpoint.write_checkpoint(run_dir, payload)
        restore.append(lambda: setattr(checkpoint.CheckpointWriter, "submit", real_submit))
    events = []
    try:
        t = time.perf_counter()
        final = TrainingSession().run(cfg, events.append)
        seconds = time.perf_counter() - t
    finally:
        session_mod.build_learner = real_build
        for undo in restore:
            undo()
    return final, events, seconds


def predict_seconds(run_dir: str, images: str, out: Path, timings: Timings) -> None:
    from segstudio.inference import Predictor

    with timings.phase("prediction"):
        Predictor.load(run_dir, device="cpu").predict_folder(images, out)


def patch_images(root: Path, n: int, side: int) -> tuple[Path, Path]:
    """`n` grey side x side PNGs with smooth bright ellipses (class 1) on a noisy background."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    yy, xx = np.mgrid[:side, :side].astype(np.float32)
    for i in range(n):
        mask = np.zeros((side, side), np.uint8)
        for _ in range(rng.integers(3, 7)):
            cy, cx = rng.uniform(0, side, 2)
            ry, rx = rng.uniform(side / 30, side / 10, 2)
            mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
        image = 90 + 60 * mask + rng.normal(0, 12, mask.shape)
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(images / f"img{i:03d}.png")
        Image.fromarray(mask * 255).save(masks / f"img{i:03d}.png")
    return images, masks


def configs(kind: str, root: Path, args):
    """(TrainConfig, folder to predict) of one benchmark run."""
    from segstudio.config import Arch, DataConfig, Device, InputMode, TrainConfig
    from segstudio.data import sample_dataset

    common = dict(arch=Arch.resnet18, pretrained=False, size=args.size, bs=args.bs, epochs=args.epochs,
                  device=Device.cpu, out_dir=str(root / "runs" / kind), run_name=kind, seed=0)
    if kind == "resize":
        images, masks = sample_dataset(root / "sample", n=args.slices)
        cfg = TrainConfig(data=DataConfig(images=str(images), masks=str(masks)), input_mode=InputMode.resize,
                          **common)
        return cfg, str(images)
    if kind == "patches":
        images, masks = patch_images(root / "patches", n=max(4, args.slices // 4),
                                     side=args.size * (2 if args.smoke else 4))
        cfg = TrainConfig(data=DataConfig(images=str(images), masks=str(masks)), input_mode=InputMode.patches,
                          **common)
        return cfg, str(images)
    if kind == "scans":
        from segstudio.data.sample_volumes import sample_volumes

        images, _ = sample_volumes(root / "volumes")
        cfg = TrainConfig(data=DataConfig(images=str(images.parent), context=1), **common)
        return cfg, str(images)
    raise ValueError(kind)


PHASES = ("imports", "dataset + cache", "build learner", "training steps", "validation", "checkpoint copies",
          "checkpoint writes", "checkpoint wait (end)", "best-model saves", "previews", "metrics files", "other",
          "prediction")
BACKGROUND = "checkpoint writes (background)"


def table(kind: str, timings: Timings, run_seconds: float, imports: float, epochs: int, sync: bool) -> list[str]:
    s = dict(timings.seconds)
    if sync:  # written in the training thread
        s["checkpoint writes"] = s.pop(BACKGROUND, 0.0)
        timings.counts["checkpoint writes"] = timings.counts.pop(BACKGROUND, 0)
    background = s.pop(BACKGROUND, 0.0)
    s["imports"] = imports
    inside = sum(v for k, v in s.items() if k not in ("imports", "prediction"))
    s["other"] = max(0.0, run_seconds - inside)
    total = sum(s.get(k, 0.0) for k in PHASES)
    rows = [f"\n{kind}: {epochs} epoch(s), run {run_seconds:.1f} s, whole {total:.1f} s",
            "| phase | s | share | calls |", "|---|---|---|---|"]
    for name in PHASES:
        v = s.get(name, 0.0)
        rows.append(f"| {name} | {v:.2f} | {100 * v / total:.1f}% | {timings.counts.get(name, '') or ''} |")
    learning = s.get("training steps", 0.0)
    rows.append(f"learning (training steps) / whole = {learning / total:.2f}")
    if background:
        rows.append(f"checkpoint writes in the background thread: {background:.2f} s "
                    f"({timings.counts.get(BACKGROUND, 0)} writes), overlapping the training")
    return rows


def curve(args) -> int:
    """Held-out Dice of runs of growing length: epochs (or time budgets) x seeds, one line each."""
    from bench_peer import pooled_dice  # the side-by-side benchmark's scoring, so the figures compare
    from segstudio.config import Arch, DataConfig, Device, TrainConfig
    from segstudio.inference import Predictor
    from segstudio.training import events as ev
    from segstudio.training.session import TrainingSession

    train, test = args.split / "train", args.split / "test"
    print(f"curve on {args.split}: {args.curve_unit} {args.curve}, seeds {args.seeds}, size {args.size}, bs {args.bs}, "
          f"lr {args.lr or 'default'}, random encoder, CPU")
    print("| " + args.curve_unit + " | seed | epochs | wall s | CPU s | best valid Dice | held-out Dice | with TTA | "
          "load at start |\n|" + "---|" * 9, flush=True)
    with tempfile.TemporaryDirectory(prefix="segstudio-curve-") as tmp:
        for point in args.curve:
            for seed in args.seeds:
                by_time = args.curve_unit == "seconds"
                cfg = TrainConfig(data=DataConfig(images=str(train / "images"), masks=str(train / "masks"),
                                                  labels="classes"),
                                  arch=Arch.resnet18, pretrained=False, size=args.size, bs=args.bs,
                                  epochs=10 if by_time else int(point), time_budget=point if by_time else 0.0,
                                  lr_lo=args.lr, lr_hi=args.lr, device=Device.cpu, seed=seed,
                                  out_dir=str(Path(tmp) / "runs"), run_name=f"p{point}s{seed}")
                load = os.getloadavg()[0]
                t, c = time.perf_counter(), time.process_time()
                final = TrainingSession().run(cfg, lambda e: None)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                if not isinstance(final, ev.Finished):
                    print(f"{point} seed {seed}: the run ended with {final}", file=sys.stderr)
                    return 1
                predictor, dice = Predictor.load(final.run_dir, device="cpu"), []
                for tta in (False, True):
                    out = Path(tmp) / f"pred_p{point}s{seed}_{tta}"
                    predictor.tta = tta
                    predictor.predict_folder(test / "images", out)
                    per_class = pooled_dice(out, test / "masks")
                    dice.append(sum(per_class) / len(per_class))
                print(f"| {point:g} | {seed} | {final.epochs_done} | {wall:.0f} | {cpu:.0f} | {final.best_dice:.3f} | "
                      f"{dice[0]:.3f} | {dice[1]:.3f} | {load:.1f} |", flush=True)
    return 0


def step_profile(args) -> int:
    """Seconds a training step takes, and the forward pass's share per layer, per head width."""
    import torch
    from torch import nn

    from segstudio.model.unet import build_unet
    from segstudio.preprocess.plan import Plan

    torch.manual_seed(0)
    bs, steps = args.bs or 2, args.steps
    x = torch.randn(bs, 3, args.size, args.size)
    y = torch.randint(0, 3, (bs, args.size, args.size))
    print(f"one step at {args.size} px, batch {bs}, resnet18, instance norm, {torch.get_num_threads()} threads, "
          f"median of {steps} after 2 warm-up; load average {os.getloadavg()[0]:.1f}")
    for head in args.heads:
        model = build_unet(Plan(codes=["bg", "a", "b"], size=args.size, mean=[0.0] * 3, std=[1.0] * 3,
                                arch="resnet18", norm="instance", head=head))
        opt, loss_fn = torch.optim.Adam(model.parameters(), 1e-3), nn.CrossEntropyLoss()
        forward: dict[str, list[float]] = defaultdict(list)
        starts: dict[int, float] = {}
        for i, layer in enumerate(model.layers):
            name = f"{i} {type(layer).__name__}"
            layer.register_forward_pre_hook(lambda m, a, i=i: starts.__setitem__(i, time.perf_counter()))
            layer.register_forward_hook(lambda m, a, o, i=i, name=name: forward[name].append(
                time.perf_counter() - starts[i]))
        totals = []
        for step in range(steps + 2):
            t = time.perf_counter()
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            if step >= 2:
                totals.append(time.perf_counter() - t)
        median = sorted(totals)[len(totals) // 2]
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"\nhead {head or 'fastai'}: {median:.3f} s a step, {params:.1f} M parameters\n"
              "| layer | forward ms (median) |\n|---|---|")
        for name, seconds in forward.items():
            print(f"| {name} | {1000 * sorted(seconds[2:])[len(seconds[2:]) // 2]:.1f} |")
    optimiser_steps(list(model.parameters()), steps)
    return 0


def optimiser_steps(params: list, steps: int) -> None:
    """One optimiser step on `params` (random gradients): fastai's Adam against the fused AdamW
    the product uses on CUDA and the CPU, alternating, median of `steps`."""
    import torch
    from fastai.optimizer import Adam

    from segstudio.training.schedules import fused_adamw

    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    optimisers = {"fastai Adam": Adam(params, lr=1e-3), "fused AdamW": fused_adamw(params, lr=1e-3)}
    seconds: dict[str, list[float]] = defaultdict(list)
    for _ in range(steps + 1):
        for name, opt in optimisers.items():
            t = time.perf_counter()
            opt.step()
            seconds[name].append(time.perf_counter() - t)
    print("\n| optimiser | one step ms (median) |\n|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {1000 * sorted(values[1:])[len(values[1:]) // 2]:.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=["resize", "patches", "scans"],
                    choices=["resize", "patches", "scans"])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--bs", type=int, default=0, help="batch size (0: the product's automatic one)")
    ap.add_argument("--slices", type=int, default=40, help="2-D sample slices (patch images: a quarter)")
    ap.add_argument("--sync-checkpoints", action="store_true", help="write checkpoints in the training thread")
    ap.add_argument("--smoke", action="store_true", help="one epoch on tiny data: only checks that it runs")
    ap.add_argument("--curve", nargs="+", type=float, help="held-out Dice against time: epochs (or seconds) per run")
    ap.add_argument("--curve-unit", choices=["epochs", "seconds"], default="epochs")
    ap.add_argument("--split", type=Path, help="--curve: a folder with train/ and test/ (images/, masks/)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--lr", type=float, default=None, help="--curve: one learning rate for all groups")
    ap.add_argument("--step-profile", action="store_true", help="time one training step per head width")
    ap.add_argument("--heads", nargs="+", type=int, default=[0, 32], help="--step-profile: head widths (0: fastai's)")
    ap.add_argument("--steps", type=int, default=5, help="--step-profile: timed steps per model")
    args = ap.parse_args()
    if args.step_profile:
        os.environ.setdefault("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))
        return step_profile(args)
    if args.curve:
        if not args.split:
            ap.error("--curve needs --split")
        os.environ.setdefault("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))
        return curve(args)
    if args.smoke:
        args.epochs, args.size, args.bs, args.slices = 1, 32, 8, 16
        args.runs = [r for r in args.runs if r != "scans"] if len(args.runs) == 3 else args.runs
    os.environ.setdefault("OMP_NUM_THREADS", str(min(2, os.cpu_count() or 1)))

    imports = import_seconds()
    from segstudio.training import events as ev

    print(f"imports ({IMPORTS}) in a fresh interpreter: {imports:.2f} s; load average "
          f"{os.getloadavg()[0]:.1f} at the start")
    ok = True
    with tempfile.TemporaryDirectory(prefix="segstudio-ttd-") as tmp:
        for kind in args.runs:
            root = Path(tmp) / kind
            cfg, predict_dir = configs(kind, root, args)
            timings = Timings()
            final, events, seconds = instrumented_run(cfg, timings, args.sync_checkpoints)
            if not isinstance(final, ev.Finished):
                print(f"{kind}: the run ended with {final}", file=sys.stderr)
                ok = False
                continue
            predict_seconds(final.run_dir, predict_dir, root / "predicted", timings)
            print("\n".join(table(kind, timings, seconds, imports, final.epochs_done, args.sync_checkpoints)))
            print(f"best Dice {final.best_dice:.3f}; load average {os.getloadavg()[0]:.1f} at the end")
        if args.smoke:  # and one point of the curve, on a tiny generated split
            from bench_peer import make_tiny_split

            args.split, args.curve, args.bs = Path(tmp) / "split", [1], 4
            make_tiny_split(args.split)
            ok = curve(args) == 0 and ok
        args.size, args.steps = 64, 1  # and the step profile, small (instance norm needs 2 x 2 at the bottom)
        ok = step_profile(args) == 0 and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
