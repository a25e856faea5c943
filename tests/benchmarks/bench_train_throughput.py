"""Training throughput: images/s of segstudio's whole training loop against a ceiling, and the
effect of each speed lever (a script, not a test).

Whole loop: the learner a run builds (`build_learner`: the uint8 slice cache gathered per batch,
fastai batch transforms for augmentation and normalisation on the device, the U-Net, the loss,
mixed precision as the config's "auto" gives it) trained by `TrainingSession._train` itself
(StopGuard, EventReporter with its per-epoch model and checkpoint saves, fit_one_cycle), on a
synthetic dataset of random smooth shapes built in memory (no files). One warm-up epoch, then
`--epochs` timed epochs: images/s = training images / time of the training phase (a fastai
callback takes timestamps at before_train / after_train, synchronising the GPU), and the same
images over the whole epoch (validation, preview and saves included); the fastest timed epoch
counts (other load on the machine only slows epochs down).

Ceiling: the same model (arch, classes, batch size, loss, precision, memory format) doing
forward + backward + optimizer step (torch AdamW, fused on CUDA and the CPU) on random tensors already on the
device, an epoch's worth of steps timed between synchronisations (best of `--epochs` repeats).
Target on a GPU: whole loop / ceiling >= 0.85.

Levers, each a row on top of segstudio as it is (on/off): no per-batch host sync for the
reported loss (reporter, NaN check and fastai's smoothed loss kept on the device, read every
FLUSH batches), the uint8 cache on the device (batches gathered there), fused AdamW (through
fastai's OptimWrapper; CUDA only), channels_last (fastai's ChannelsLast), bf16 autocast off
(segstudio has it on on CUDA), the eager levers together, torch.compile (training batches only;
skipped with a note if it fails), and everything together. Also the ceiling in channels_last,
and segstudio measured again at the end of the first (arch, size) to show drift.

On CUDA it also lists the Python lines that still synchronise the host during training batches
with every eager lever on (torch.cuda.set_sync_debug_mode).

Rows run in order of importance, and no lever row starts that would end after `--budget-s`
seconds (default 270 on CUDA, no limit elsewhere): first segstudio and the ceiling for every
(arch, size), then the levers for each (arch, size), the smallest and the largest first.

    python tests/benchmarks/bench_train_throughput.py [--slices 2000] [--sizes 256 512]
        [--archs resnet18 resnet34] [--epochs 1] [--bs 8] [--device auto] [--compile auto]
        [--budget-s 270] [--json results.json]
    # tiny, on a CPU (~3 min on 2 quiet cores):
    python tests/benchmarks/bench_train_throughput.py --slices 64 --sizes 64 --archs resnet18 --epochs 2 --device cpu
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from fastai.callback.channelslast import ChannelsLast  # noqa: E402
from fastai.callback.core import Callback, CancelFitException  # noqa: E402
from fastai.layers import ToTensorBase  # noqa: E402
from fastai.learner import AvgSmoothLoss  # noqa: E402
from fastai.optimizer import OptimWrapper  # noqa: E402
from fastai.torch_core import TensorImage, TensorMask, find_bs  # noqa: E402

from segstudio.config import Arch, Precision, TrainConfig  # noqa: E402
from segstudio.data.items import SegDataset, VolumeRef  # noqa: E402
from segstudio.training import events as ev  # noqa: E402
from segstudio.training import learner as learner_mod  # noqa: E402
from segstudio.training import session as session_mod  # noqa: E402
from segstudio.training.schedules import FUSED_DEVICES  # noqa: E402
from segstudio.training.callbacks import EventReporter, StopGuard  # noqa: E402
from segstudio.model.device import device_name, resolve_device  # noqa: E402
from segstudio.training.learner import build_learner  # noqa: E402
from segstudio.training.loaders import CachedPairs  # noqa: E402

CODES = ["background", "organ", "lesion"]
FLUSH = 32  # the no-sync variants read the device-side losses and NaN flag every FLUSH batches
CEILING_WARMUP = 10  # untimed optimizer steps before the ceiling is timed


# --------------------------------------------------------------------------------------------
# data

def synthetic_dataset(n: int, size: int, seed: int = 0, unique: int = 256) -> SegDataset:
    """`n` grey slices of `size` px with random smooth shapes (two foreground classes; every
    fifth slice has none), as a 2-D dataset (each slice its own one-slice volume), 20% validation.
    `unique` slices are drawn; the others are their flipped and transposed copies (cheap to make,
    and the content does not change the cost of training)."""
    gen = torch.Generator().manual_seed(seed)
    u = min(n, unique)
    images = np.empty((n, 1, size, size), np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for start in range(0, u, 32):
        k = min(32, u - start)
        fields = F.interpolate(torch.rand(k, 3, 6, 6, generator=gen), size=(size, size), mode="bilinear",
                               align_corners=False)
        mask = torch.zeros(k, size, size, dtype=torch.uint8)
        mask[fields[:, 0] > 0.6] = 1
        mask[(fields[:, 1] > 0.65) & (mask == 1)] = 2
        mask[(torch.arange(start, start + k) % 5 == 4)] = 0  # slices without foreground
        noise = torch.rand(k, size, size, generator=gen) * 20 - 10
        image = 40 + 60 * fields[:, 2] + 90 * (mask == 1) + 150 * (mask == 2) + noise
        images[start:start + k, 0] = image.clamp(0, 255).to(torch.uint8).numpy()
        masks[start:start + k] = mask.numpy()
    for i in range(u, n):  # copies: one of the 8 flips/transposes of slice i % u
        j, turn = i % u, (i // u) % 8
        img, msk = images[j, 0], masks[j]
        if turn & 1:
            img, msk = img[::-1], msk[::-1]
        if turn & 2:
            img, msk = img[:, ::-1], msk[:, ::-1]
        if turn & 4:
            img, msk = img.T, msk.T
        images[i, 0], masks[i] = img, msk
    volumes = [VolumeRef(name=f"s{i:05d}", sources=(f"s{i:05d}.png",), label=f"s{i:05d}.png", group=f"s{i:05d}",
                         first=i, n_slices=1, shape=(1, size, size)) for i in range(n)]
    order = np.random.default_rng(seed).permutation(n)
    valid = np.sort(order[: max(1, n // 5)])
    train = np.sort(order[max(1, n // 5):])
    return SegDataset(images=images, masks=masks, volumes=volumes, codes=list(CODES), train_idx=train,
                      valid_idx=valid, window="auto", size=size)


class DeviceCachedPairs(CachedPairs):
    """CachedPairs whose uint8 images and masks live on the device: a batch is one index_select
    there instead of a host gather plus a host-to-device copy (2-D data only)."""

    _tensors: dict = {}  # (dataset, device) -> (images, masks) on the device, shared by train and valid

    def __init__(self, pairs: CachedPairs, device: torch.device):
        super().__init__(pairs.data, pairs.idx)
        key = (id(pairs.data), pairs.data.size, len(pairs.data), str(device))
        if key not in self._tensors:
            self._tensors.clear()  # one dataset on the device at a time
            self._tensors[key] = (torch.from_numpy(pairs.data.images).to(device),
                                  torch.from_numpy(pairs.data.masks).to(device))
        self.images, self.masks = self._tensors[key]
        self.device = device

    def batch(self, positions):
        rows = torch.from_numpy(self.idx[np.asarray(positions, dtype=np.int64)])
        rows = rows.to(self.device, non_blocking=True)  # a few bytes, copied without waiting for the GPU
        return TensorImage(self.images.index_select(0, rows)), TensorMask(self.masks.index_select(0, rows))


# --------------------------------------------------------------------------------------------
# the no-sync variants (benchmark only)

class NoSyncReporter(EventReporter):
    """EventReporter that keeps each batch's loss on the device and reads FLUSH of them at a
    time (one synchronisation per FLUSH batches, and one at the end of the training phase);
    the same BatchEnd events, emitted in bursts."""

    def before_epoch(self):
        super().before_epoch()
        self.pending = []

    def after_batch(self):
        if not self.training or self.epoch < self.skip_to:
            return
        self.pending.append((self.learn.loss.detach(), tuple(float(h["lr"]) for h in self.learn.opt.hypers)))
        if len(self.pending) >= FLUSH:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        losses = torch.stack([loss.float() for loss, _ in self.pending]).tolist()
        for loss, (_, lrs) in zip(losses, self.pending):
            self.losses.append(loss)
            self.emit(ev.BatchEnd(epoch=self.epoch_base + self.epoch, iteration=self.iteration,
                                  total_iterations=self.total_iterations, loss=loss, lrs=lrs))
            self.iteration += 1
        self.pending = []

    def after_train(self):
        self.flush()

    def after_cancel_train(self):
        self.flush()


class NoSyncStopGuard(StopGuard):
    """StopGuard whose NaN check accumulates on the device and is read every FLUSH batches and
    at the end of the training phase (a NaN stops the run up to FLUSH batches later)."""

    def before_fit(self):
        super().before_fit()
        self.bad, self.seen = None, 0

    def after_loss(self):
        if not self.training:
            return
        bad = ~torch.isfinite(self.learn.loss.detach())
        self.bad = bad if self.bad is None else self.bad | bad
        self.seen += 1
        if self.seen % FLUSH == 0:
            self._read()

    def after_train(self):
        self._read()
        super().after_train()

    def _read(self):
        if self.bad is not None and bool(self.bad.item()):
            self.failure = self.NAN
            self.stop.set()
            raise CancelFitException()


class DeviceSmoothLoss(AvgSmoothLoss):
    """fastai's smoothed training loss (Recorder) without its per-batch copy to the host."""

    def accumulate(self, learn):
        self.count += 1
        loss = learn.loss.detach().mean().float()
        self.val = torch.lerp(loss, self.val.to(loss.device), self.beta)


# --------------------------------------------------------------------------------------------
# timing

def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochTimer(Callback):
    """Per epoch: training images, seconds of the training phase (before_train..after_train) and
    of the whole epoch (validation, preview and the reporter's saves included); synchronises the
    device at each timestamp. Order 200: after every other callback of the same event."""

    order = 200

    def __init__(self, device: torch.device):
        self.device, self.epochs = device, []

    def before_epoch(self):
        synchronize(self.device)
        self.t_epoch = time.perf_counter()

    def before_train(self):
        synchronize(self.device)
        self.t_train, self.n = time.perf_counter(), 0

    def after_batch(self):
        if self.training:
            self.n += find_bs(self.learn.yb)

    def after_train(self):
        synchronize(self.device)
        self.train_s = time.perf_counter() - self.t_train

    def after_epoch(self):
        synchronize(self.device)
        self.epochs.append((self.n, self.train_s, time.perf_counter() - self.t_epoch))


# --------------------------------------------------------------------------------------------
# rows

@dataclass(frozen=True)
class Variant:
    """One row: segstudio's loop with some levers changed."""

    name: str
    channels_last: bool = False
    fp32: bool = False  # bf16 autocast off (segstudio turns it on on CUDA)
    fused_adam: bool = False
    no_sync: bool = False
    device_cache: bool = False
    compile: bool = False


BASELINE = Variant("segstudio (as a run)")
ALL_EAGER = Variant("all eager levers", channels_last=True, fused_adam=True, no_sync=True, device_cache=True)
LEVERS = [
    Variant("+ no per-batch sync", no_sync=True),
    Variant("+ uint8 cache on device", device_cache=True),
    Variant("+ fused AdamW", fused_adam=True),
    Variant("+ channels_last", channels_last=True),
    Variant("- bf16 autocast (fp32)", fp32=True),
    ALL_EAGER,
    Variant("+ torch.compile", compile=True),
    Variant("all levers + compile", channels_last=True, fused_adam=True, no_sync=True, device_cache=True,
            compile=True),
]


@dataclass
class Row:
    arch: str
    size: int
    bs: int
    name: str
    train_ips: float = float("nan")  # images/s of the training phase
    epoch_ips: float = float("nan")  # the same images over the whole epoch (validation included)
    ceiling_ips: float = float("nan")
    wall_s: float = 0.0
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.train_ips / self.ceiling_ips if self.ceiling_ips else float("nan")


def applicable(variant: Variant, device: torch.device, mixed: bool) -> tuple[Variant | None, str]:
    """(the variant with only the levers that apply on this device, or None when nothing of it
    does; a note naming what was left out)."""
    dropped, changes = [], {}
    if variant.fused_adam and device.type != "cuda":
        dropped.append("fused AdamW (a CUDA variant here; on the CPU the product uses it already)")
        changes["fused_adam"] = False
    if variant.fp32 and not mixed:
        dropped.append("bf16 off (segstudio trains in fp32 here: its mixed precision is CUDA autocast only)")
        changes["fp32"] = False
    left = replace(variant, **changes)
    if left == replace(BASELINE, name=variant.name):
        return None, "; ".join(dropped)
    return left, ("without " + ", ".join(dropped)) if dropped else ""


def fused_adamw(params, **kwargs):
    """fastai opt_func: torch's fused AdamW behind fastai's OptimWrapper (lr, mom, sqr_mom, wd
    mapped onto lr, betas, weight_decay, so fit_one_cycle schedules it as fastai's Adam)."""
    return OptimWrapper(params, opt=partial(torch.optim.AdamW, fused=True), **kwargs)


def compile_for_training(model: torch.nn.Module) -> None:
    """torch.compile the U-Net's forward for training batches; evaluation (validation, preview)
    stays eager, so eval mode and its batch sizes cost no recompilation. fastai's last layer
    (ToTensorBase, which wraps the output in TensorImage) becomes an Identity: Dynamo recurses
    without end on fastai's patched Tensor.as_subclass (RecursionError, torch 2.14/fastai 2.8)."""
    for i, layer in enumerate(model.layers):
        if isinstance(layer, ToTensorBase):
            model.layers[i] = torch.nn.Identity()
    eager = model.forward
    compiled = torch.compile(eager, dynamic=False)
    model.forward = lambda *a, **k: compiled(*a, **k) if model.training else eager(*a, **k)


def run_config(arch: str, size: int, bs: int, epochs: int, device: torch.device, out: Path,
               fp32: bool = False) -> TrainConfig:
    """The run's config: segstudio's defaults (one_cycle, ce_dice, augmentation, empty_share,
    precision auto) with a random encoder (no download; the weights do not change the cost) and
    one warm-up epoch before the timed ones."""
    return TrainConfig(arch=Arch(arch), pretrained=False, size=size, bs=bs, epochs=1 + epochs,
                       device=device.type, precision=Precision.off if fp32 else Precision.auto,
                       out_dir=str(out))


def apply_levers(learn, variant: Variant, device: torch.device) -> None:
    """Change a freshly built learner as `variant` says (precision is set by the config)."""
    if variant.fused_adam:
        learn.opt_func, learn.opt = fused_adamw, None
    if variant.channels_last:
        learn.add_cb(ChannelsLast())
        learn.model.to(memory_format=torch.channels_last)  # before compiling, too
    if variant.device_cache:
        for dl in (learn.dls.train, learn.dls.valid):
            dl.dataset = DeviceCachedPairs(dl.dataset, device)
    if variant.no_sync:
        learn.recorder.smooth_loss = DeviceSmoothLoss(beta=learn.recorder.smooth_loss.beta)
    if variant.compile:
        compile_for_training(learn.model)


def train_like_a_run(config: TrainConfig, data: SegDataset, built, run_dir: Path, device: torch.device,
                     no_sync: bool, on_event) -> None:
    """segstudio's own `TrainingSession._train` (callbacks, Started, fit_one_cycle, per-epoch
    saves); with `no_sync`, its EventReporter and StopGuard are swapped for the variants above."""
    saved = session_mod.EventReporter, session_mod.StopGuard
    if no_sync:
        session_mod.EventReporter, session_mod.StopGuard = NoSyncReporter, NoSyncStopGuard
    try:
        session_mod.TrainingSession()._train(config, data, built, run_dir, device, on_event)
    finally:
        session_mod.EventReporter, session_mod.StopGuard = saved


def measure_loop(variant: Variant, data: SegDataset, arch: str, bs: int, epochs: int, device: torch.device,
                 tmp: Path) -> tuple[float, float, str, dict]:
    """(train images/s, epoch images/s, note, extra) of segstudio's training loop with `variant`'s
    levers, over the epochs after the first."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=tmp))
    config = run_config(arch, data.size, bs, epochs, device, tmp, fp32=variant.fp32)
    built = build_learner(config, data, device, path=str(run_dir))
    learn, note, extra = built.learn, [], {"mixed_precision": built.mixed_precision}
    apply_levers(learn, variant, device)
    timer = EpochTimer(device)
    learn.add_cb(timer)
    events = []
    t0 = time.perf_counter()
    train_like_a_run(config, data, built, run_dir, device, variant.no_sync, events.append)
    guard = learn.cbs.filter(lambda c: isinstance(c, StopGuard))[0]
    if guard.failure:
        note.append(guard.failure)
    timed = timer.epochs[1:]
    if not timed:
        raise RuntimeError(f"only {len(timer.epochs)} epoch(s) finished")
    # the best timed epoch: other load on the machine only ever slows an epoch down
    train_ips = max(n / t for n, t, _ in timed)
    epoch_ips = max(n / t for n, _, t in timed)
    mean_epoch_s = sum(t for _, _, t in timed) / len(timed)
    if variant.compile:
        extra["first_epoch_extra_s"] = round(max(0.0, timer.epochs[0][2] - mean_epoch_s), 1)
        note.append(f"first epoch +{extra['first_epoch_extra_s']:.0f} s (compiling)")
    extra.update(images_per_epoch=timed[0][0], batch_events=sum(type(e).__name__ == "BatchEnd" for e in events),
                 train_ips_each=[round(n / t, 2) for n, t, _ in timed], fit_s=round(time.perf_counter() - t0, 1))
    del learn, built
    shutil.rmtree(run_dir, ignore_errors=True)
    return train_ips, epoch_ips, "; ".join(note), extra


def measure_ceiling(data: SegDataset, arch: str, bs: int, device: torch.device, tmp: Path,
                    channels_last: bool = False, repeats: int = 1) -> tuple[float, dict]:
    """(images/s, extra) of forward + backward + AdamW step of the run's model on random
    device-resident batches, in the precision segstudio uses on `device` (bf16 autocast on CUDA
    when supported, else fp16 with a GradScaler; fp32 elsewhere): the best of `repeats` runs of
    an epoch's worth of steps."""
    config = run_config(arch, data.size, bs, 0, device, tmp)
    built = build_learner(config, data, device, path=str(tmp))
    model, loss_func = built.learn.model, built.learn.loss_func
    bs = built.learn.dls.train.bs
    steps = len(built.learn.dls.train)
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type in FUSED_DEVICES)  # as the product
    x = torch.randn(bs, 3, data.size, data.size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, len(data.codes), (bs, data.size, data.size), device=device)
    dtype = None
    if built.mixed_precision:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_func(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)

    for _ in range(CEILING_WARMUP if device.type == "cuda" else 2):
        step()
    rates = []
    for _ in range(repeats):  # the best of `repeats` epochs' worth of steps, as for the loop
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        synchronize(device)
        rates.append(steps * bs / (time.perf_counter() - t0))
    del model, opt, built
    return max(rates), {"steps": steps, "repeats": repeats, "dtype": str(dtype or torch.float32),
                        "ips_each": [round(r, 2) for r in rates]}


def sync_report(data: SegDataset, arch: str, bs: int, device: torch.device, tmp: Path, batches: int = 8) -> list[str]:
    """The Python lines that synchronise the host with the GPU during `batches` training batches
    of the loop with every eager lever on (torch.cuda.set_sync_debug_mode), most frequent first."""

    class Probe(Callback):
        order = 300

        def before_fit(self):
            self.k = 0

        def before_batch(self):
            if self.training and self.k == 3:  # after a few warm batches
                torch.cuda.set_sync_debug_mode("warn")

        def after_batch(self):
            if self.training:
                self.k += 1
                if self.k == 3 + batches:
                    torch.cuda.set_sync_debug_mode("default")
                    raise CancelFitException()

    config = run_config(arch, data.size, bs, 0, device, tmp)
    run_dir = Path(tempfile.mkdtemp(prefix="sync-", dir=tmp))
    built = build_learner(config, data, device, path=str(run_dir))
    apply_levers(built.learn, ALL_EAGER, device)
    built.learn.add_cb(Probe())
    counts: dict[str, int] = {}

    def record(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" not in str(message).lower():
            return
        stack = traceback.extract_stack()[:-1]
        ours = [f for f in stack if "segstudio" in f.filename or "bench_" in f.filename]
        where = f"{Path(filename).name}:{lineno}"
        if ours and ours[-1].filename != filename:
            where += f" (from {Path(ours[-1].filename).name}:{ours[-1].lineno})"
        counts[where] = counts.get(where, 0) + 1

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            train_like_a_run(config, data, built, run_dir, device, True, lambda e: None)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        shutil.rmtree(run_dir, ignore_errors=True)
    return [f"{where}: {n} in {batches} batches ({n / batches:.2f}/batch)"
            for where, n in sorted(counts.items(), key=lambda kv: -kv[1])]


# --------------------------------------------------------------------------------------------
# output

def fmt(x: float, digits: int = 0) -> str:
    return "-" if x != x else f"{x:.{digits}f}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    head = ["arch", "size", "batch", "loop", "train img/s", "epoch img/s (with validation)", "ceiling img/s",
            "ratio", "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r.arch} | {r.size} | {r.bs} | {r.name} | {fmt(r.train_ips, 1)} | {fmt(r.epoch_ips, 1)} | "
                     f"{fmt(r.ceiling_ips, 1)} | {fmt(r.ratio, 2)} | {r.note} |")
    return "\n".join(lines)


def print_row(r: Row) -> None:
    print(f"  {r.arch} {r.size}px bs{r.bs} {r.name:<26} train {fmt(r.train_ips, 1):>8} img/s  "
          f"epoch {fmt(r.epoch_ips, 1):>8} img/s  ceiling {fmt(r.ceiling_ips, 1):>8}  ratio {fmt(r.ratio, 2):>5}"
          f"  ({r.wall_s:.0f} s){'  ' + r.note if r.note else ''}", flush=True)


# --------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=2000, help="synthetic slices (20%% validation)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--archs", nargs="+", default=["resnet18", "resnet34"], choices=[a.value for a in Arch])
    ap.add_argument("--epochs", type=int, default=1, help="timed epochs, after one warm-up epoch")
    ap.add_argument("--bs", type=int, default=8, help="batch size (the automatic batch's largest)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                    help="the torch.compile rows; auto: on CUDA only (compiling takes minutes on a CPU)")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no lever row expected to end after this many seconds from the start "
                         "(0: no limit; default 270 on CUDA, no limit elsewhere)")
    ap.add_argument("--json", default="", help="also write the rows to this JSON file")
    return ap.parse_args(argv)


class Bench:
    """One benchmark run: the datasets (one size in memory at a time), the rows measured so far."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.args, self.device = args, device
        self.mixed = device.type == "cuda"  # what precision "auto" gives
        self.start = time.perf_counter()
        self.tmp = Path(tempfile.mkdtemp(prefix="segstudio-bench-throughput-"))
        self.combos = [(a, s) for s in args.sizes for a in args.archs]
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.ceilings: dict[tuple[str, int], float] = {}
        self.baseline_s: dict[tuple[str, int], float] = {}
        self._data: dict[int, SegDataset] = {}

    def data(self, size: int) -> SegDataset:
        """The synthetic dataset at `size` px (built on first use; the previous size is dropped)."""
        if size not in self._data:
            self._data.clear()
            t0 = time.perf_counter()
            d = self._data[size] = synthetic_dataset(self.args.slices, size)
            print(f"dataset {size}px: {len(d)} slices ({len(d.train_idx)} train, {len(d.valid_idx)} valid), "
                  f"{(d.images.nbytes + d.masks.nbytes) / 1e6:.0f} MB, built in {time.perf_counter() - t0:.1f} s",
                  flush=True)
        return self._data[size]

    def cleanup(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print_row(row)
        self.cleanup()

    def ceiling(self, arch: str, size: int, channels_last: bool = False) -> Row:
        t0 = time.perf_counter()
        ips, extra = measure_ceiling(self.data(size), arch, self.args.bs, self.device, self.tmp, channels_last,
                                     repeats=self.args.epochs)
        if not channels_last:
            self.ceilings[(arch, size)] = ips
        name = "ceiling, channels_last" if channels_last else "ceiling"
        return Row(arch, size, self.args.bs, name, train_ips=ips, ceiling_ips=self.ceilings[(arch, size)],
                   wall_s=time.perf_counter() - t0,
                   note=f"{extra['dtype'].replace('torch.', '')}, best of {extra['repeats']} x {extra['steps']} steps",
                   extra=extra)

    def loop(self, variant: Variant, arch: str, size: int, note: str = "") -> Row:
        t0 = time.perf_counter()
        try:
            train_ips, epoch_ips, more, extra = measure_loop(variant, self.data(size), arch, self.args.bs,
                                                             self.args.epochs, self.device, self.tmp)
        except Exception as exc:  # noqa: BLE001 - torch.compile (or another lever) may fail here
            train_ips = epoch_ips = float("nan")
            first_line = (str(exc).strip().splitlines() or [""])[0][:160]
            more, extra = f"failed: {type(exc).__name__}: {first_line}", {}
        finally:
            if variant.compile:
                torch._dynamo.reset()
        return Row(arch, size, self.args.bs, variant.name, train_ips, epoch_ips, self.ceilings[(arch, size)],
                   time.perf_counter() - t0, "; ".join(n for n in (note, more) if n), extra)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def run(bench: Bench) -> None:
    """Measure in order of importance: segstudio and its ceiling everywhere, the host-sync report,
    then every lever for each (arch, size), the corners first, within the time budget."""
    args, device = bench.args, bench.device
    budget = args.budget_s if args.budget_s is not None else (270.0 if device.type == "cuda" else 0.0)
    run_compile = args.compile == "on" or (args.compile == "auto" and device.type == "cuda")
    if not run_compile:
        bench.notes.append("torch.compile rows skipped (" + ("--compile off" if args.compile == "off" else
                           "--compile auto: CUDA only; on this CPU compiling took minutes, see the README") + ")")

    print("\n# segstudio against the ceiling", flush=True)
    for arch, size in bench.combos:
        bench.add(bench.ceiling(arch, size))
        row = bench.loop(BASELINE, arch, size)
        bench.baseline_s[(arch, size)] = row.wall_s
        bench.add(row)

    if device.type == "cuda":
        arch, size = bench.combos[0]
        try:
            lines = sync_report(bench.data(size), arch, args.bs, device, bench.tmp)
            print(f"\n# host synchronisations in training batches, all eager levers on ({arch} {size}px):")
            print("\n".join("  " + line for line in lines) or "  none")
        except Exception as exc:  # noqa: BLE001 - a diagnostic only
            print(f"\n# sync report failed: {type(exc).__name__}: {exc}")
        bench.cleanup()
    else:
        bench.notes.append("host-sync report skipped (CUDA only)")

    print("\n# levers, each on top of segstudio as it is (the 'all' rows combine them)", flush=True)
    combos = bench.combos
    compile_s, compile_failed = 90.0, ""  # a guess of the compile time until one is measured
    for arch, size in [combos[0]] + combos[-1:][:len(combos) - 1] + combos[1:-1]:  # the corners first
        first = (arch, size) == combos[0]
        for variant in [None] + LEVERS:  # None: the ceiling in channels_last
            if variant is not None and variant.compile and not run_compile:
                continue
            if variant is None:
                name, note = "ceiling, channels_last", ""
            else:
                name = variant.name
                variant, note = applicable(variant, device, bench.mixed)
                if variant is None:
                    if first:
                        bench.notes.append(f"{name}: skipped ({note})")
                    continue
                if variant.compile and compile_failed:
                    bench.rows.append(Row(arch, size, args.bs, name, ceiling_ips=bench.ceilings[(arch, size)],
                                          note=f"skipped: compile failed before ({compile_failed})"))
                    continue
            expected = bench.baseline_s[(arch, size)] * (0.5 if variant is None else 1.0)
            if variant is not None and variant.compile:
                expected += compile_s
            if budget and bench.elapsed() + expected > budget:
                bench.rows.append(Row(arch, size, args.bs, name, ceiling_ips=bench.ceilings[(arch, size)],
                                      note="not measured: time budget (--budget-s)"))
                continue
            if variant is None:
                row = bench.ceiling(arch, size, channels_last=True)
            else:
                row = bench.loop(variant, arch, size, note)
            if variant is not None and variant.compile:
                if "failed:" in row.note:
                    compile_failed = row.note
                compile_s = max(row.extra.get("first_epoch_extra_s", compile_s), 10.0)
            bench.add(row)
        if first and (not budget or bench.elapsed() + bench.baseline_s[(arch, size)] <= budget):
            # the same row as the first, measured again: how far the machine drifted meanwhile
            bench.add(bench.loop(replace(BASELINE, name="segstudio again (drift check)"), arch, size))


def report(bench: Bench) -> None:
    """The table (per (arch, size): the ceiling, segstudio, then its levers), notes, and JSON."""
    args, device = bench.args, bench.device
    ordered = [r for a, s in bench.combos for r in bench.rows if (r.arch, r.size) == (a, s)]
    print(f"\n# {device_name(device)}, {args.slices} slices, batch {args.bs}, {args.epochs} timed epoch(s) after "
          f"1 warm-up; ratio = train img/s / ceiling img/s (target >= 0.85 on a GPU)\n")
    print(table(ordered))
    for note in bench.notes:
        print("note:", note)
    print(f"\ntotal {bench.elapsed():.0f} s; load average at the end {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "device": device_name(device), "torch": torch.__version__, "args": vars(args), "notes": bench.notes,
            "total_s": round(bench.elapsed(), 1),
            "rows": [{**r.__dict__, "ratio": r.ratio} for r in ordered]}, indent=1, default=str))


def main(argv=None) -> int:
    args = parse_args(argv)
    device, warning = resolve_device(args.device)
    if warning:
        print("note:", warning)
    torch.manual_seed(0)
    plain_stats = learner_mod.dataset_stats
    stats: dict = {}

    def dataset_stats(d: SegDataset):  # once per dataset, not once per row
        key = (id(d), d.size, len(d))
        if key not in stats:
            stats[key] = plain_stats(d)
        return stats[key]

    learner_mod.dataset_stats = dataset_stats
    mixed = device.type == "cuda"
    print(f"device: {device_name(device)}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"cudnn.benchmark {torch.backends.cudnn.benchmark}; segstudio's precision (auto): "
          f"{'bf16' if mixed and torch.cuda.is_bf16_supported() else 'fp16' if mixed else 'fp32'}; "
          f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)", flush=True)
    bench = Bench(args, device)
    try:
        run(bench)
        report(bench)
    finally:
        learner_mod.dataset_stats = plain_stats
        shutil.rmtree(bench.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
