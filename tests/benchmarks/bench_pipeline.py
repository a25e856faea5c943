"""Benchmark: segstudio's cached pipeline against the plain fastai DataBlock recipe.

Both sides train fastai's unet_learner (same arch, random encoder, same size, batch size, learning
rate, augmentations and split) on the same generated folder, once per source format (PNG, DICOM):

  fastai     DataBlock(ImageBlock, MaskBlock(codes)) + Resize item tfm + aug_transforms + Normalize,
             files decoded every epoch (DICOM through a small pydicom get_x returning a PILImage)
  segstudio  segstudio.data.load_dataset (one-time uint8 cache) + training.loaders.build_dataloaders
             + training.learner.build_learner; the same aug_transforms settings and random draws,
             with the affine/warp grid built once per batch (training.augment.SharedGridAffine)

Printed: data-loader images/s (one full epoch of dls.train, after_batch included, after a
warm-up epoch; best of --reps), seconds per training epoch (train + validation), the final
foreground-mean Dice of each side on its validation set, the ratios, and (unless --no-profile)
milliseconds per batch of every loader stage.

    python tests/benchmarks/bench_pipeline.py [--n 48] [--size 256] [--src 512] [--epochs 1] [--bs 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore")

import pydicom  # noqa: E402
import torch  # noqa: E402
from fastai.callback.core import Callback  # noqa: E402
from fastai.callback.schedule import fit_one_cycle  # noqa: E402,F401  (patches Learner.fit_one_cycle)
from fastai.data.block import DataBlock  # noqa: E402
from fastai.data.transforms import FuncSplitter, Normalize  # noqa: E402
from fastai.losses import CrossEntropyLossFlat  # noqa: E402
from fastai.torch_core import set_seed  # noqa: E402
from fastai.vision.augment import AffineCoordTfm, LightingTfm, Resize, ResizeMethod, aug_transforms  # noqa: E402
from fastai.vision.core import PILImage  # noqa: E402
from fastai.vision.data import ImageBlock, MaskBlock  # noqa: E402
from fastai.vision.learner import unet_learner  # noqa: E402
from fastcore.basics import noop  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.models import resnet18, resnet34, resnet50  # noqa: E402

from segstudio.config import Arch, DataConfig, Loss, Precision, TrainConfig  # noqa: E402
from segstudio.data import load_dataset, sample_dataset  # noqa: E402
from segstudio.training.learner import build_learner  # noqa: E402
from segstudio.training.augment import AUG_PARAMS, SharedGridAffine  # noqa: E402
from segstudio.training.loaders import build_dataloaders, dataset_stats  # noqa: E402
from segstudio.training.metrics import dice_counts, dice_from_counts, foreground_mean  # noqa: E402

ARCHS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}
DEVICE = torch.device("cpu")  # --device sets it


# ---------------------------------------------------------------------------------------------
# Data: N phantom slices (segstudio's sample generator) as DICOM, and the same pixels as PNG
# ---------------------------------------------------------------------------------------------

def dicom_uint8(path) -> np.ndarray:
    """A CT DICOM file -> uint8 (H, W) in the file's own window (what segstudio's "auto" uses)."""
    ds = pydicom.dcmread(path)
    values = ds.pixel_array.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1)
    values += float(ds.get("RescaleIntercept", 0) or 0)
    width, level = float(ds.WindowWidth), float(ds.WindowCenter)
    out = (values - (level - width / 2)) * (255.0 / width)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def dicom_pil(path) -> PILImage:
    """fastai get_x for DICOM (a PILDicom stand-in, without fastai.medical.imaging): RGB PILImage."""
    return PILImage(Image.fromarray(dicom_uint8(path)).convert("RGB"))


def make_sources(root: Path, n: int, src: int) -> dict[str, tuple[Path, Path]]:
    """{"png": (images, masks), "dicom": (images, masks)}: the same slices in both formats."""
    dcm_images, masks = sample_dataset(root / "dicom", n=n, size=src)
    png_images = root / "png" / "images"
    png_images.mkdir(parents=True, exist_ok=True)
    for f in sorted(dcm_images.glob("*.dcm")):
        Image.fromarray(dicom_uint8(f)).save(png_images / f"{f.stem}.png")
    return {"png": (png_images, masks), "dicom": (dcm_images, masks)}


# ---------------------------------------------------------------------------------------------
# The two pipelines
# ---------------------------------------------------------------------------------------------

def mask_of(masks_dir: Path, p: Path) -> Path:
    return masks_dir / f"{Path(p).stem}.png"


def in_set(names: frozenset, p: Path) -> bool:
    return Path(p).stem in names


def fastai_dls(images_dir: Path, masks_dir: Path, fmt: str, codes, valid_stems, size: int, bs: int,
               nw: int | None, stats, n_train: int):
    """The plain fastai recipe; `nw` None is fastai's default num_workers. The training loader
    drops a short last batch only when segstudio's does (a batch of one), so both sides train on
    the same number of batches per epoch (fastai's default drops every short last batch)."""
    files = sorted(p for p in images_dir.iterdir() if p.suffix in (".png", ".dcm"))
    block = DataBlock(
        blocks=(ImageBlock, MaskBlock(codes)),
        get_x=dicom_pil if fmt == "dicom" else None,
        get_y=partial(mask_of, masks_dir),
        splitter=FuncSplitter(partial(in_set, frozenset(valid_stems))),
        item_tfms=Resize(size, method=ResizeMethod.Squish),
        batch_tfms=[*aug_transforms(**AUG_PARAMS), Normalize.from_stats(*stats, cuda=DEVICE.type == "cuda")])
    kw = {} if nw is None else {"num_workers": nw}
    return block.dataloaders(files, bs=bs, device=DEVICE, drop_last=n_train % bs == 1, **kw)


def segstudio_data(images_dir: Path, masks_dir: Path, size: int):
    t = time.perf_counter()
    data, _report = load_dataset(DataConfig(images=str(images_dir), masks=str(masks_dir)), size)
    return data, time.perf_counter() - t


def segstudio_config(args, images_dir, masks_dir) -> TrainConfig:
    return TrainConfig(data=DataConfig(images=str(images_dir), masks=str(masks_dir)), arch=Arch(args.arch),
                       pretrained=False, size=args.size, bs=args.bs, epochs=args.epochs,
                       lr_lo=args.lr, lr_hi=args.lr, seed=args.seed, device=DEVICE.type, loss=Loss.ce,
                       precision=Precision.off, preview_count=0)


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------

def epoch_rate(dl) -> float:
    """Images/s over one whole epoch of `dl`, after_batch included."""
    n, t = 0, time.perf_counter()
    for x, _y in dl:
        n += len(x)
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()  # CUDA work is queued: count it in the epoch that queued it
    return n / (time.perf_counter() - t)


def loader_rates(dls: dict, reps: int) -> dict:
    """Best images/s of each loader over `reps` epochs after a warm-up epoch. The loaders take turns
    epoch by epoch, so a load from other processes hits all of them alike."""
    for dl in dls.values():
        epoch_rate(dl)
    rates = {k: 0.0 for k in dls}
    for _ in range(reps):
        for k, dl in dls.items():
            rates[k] = max(rates[k], epoch_rate(dl))
    return rates


class EpochTimer(Callback):
    order = 99

    def before_fit(self):
        self.times = []

    def before_epoch(self):
        self.t0 = time.perf_counter()

    def after_epoch(self):
        self.times.append(time.perf_counter() - self.t0)


def valid_dice(learn, n_classes: int) -> tuple[float, np.ndarray]:
    """Dataset-level per-class Dice over the learner's own validation set, and the foreground mean."""
    preds, targs = learn.get_preds(dl=learn.dls.valid)
    inter, total = dice_counts(preds.argmax(dim=1), targs, n_classes)
    per_class = dice_from_counts(inter.numpy(), total.numpy())
    return foreground_mean(per_class), per_class


def train(learn, epochs: int, lr) -> list[float]:
    timer = EpochTimer()
    learn.add_cb(timer)
    learn.fit_one_cycle(epochs, lr)
    learn.remove_cb(timer)
    return timer.times


def train_fastai(dls, args, n_classes: int):
    set_seed(args.seed)
    learn = unet_learner(dls, ARCHS[args.arch], pretrained=False, n_out=n_classes,
                         loss_func=CrossEntropyLossFlat(axis=1))
    learn.logger = noop
    with learn.no_bar():
        times = train(learn, args.epochs, args.lr)
        dice = valid_dice(learn, n_classes)
    return times, dice


def train_segstudio(config: TrainConfig, data, n_classes: int):
    built = build_learner(config, data, DEVICE)  # seeds, dataset-stat Normalize, no bar, no logger
    learn = built.learn
    learn.unfreeze()  # what TrainingSession does for a random encoder (one_cycle schedule)
    lo, hi = config.lrs(built.pretrained)
    times = train(learn, config.epochs, slice(lo, hi))
    return times, valid_dice(learn, n_classes)


# ---------------------------------------------------------------------------------------------
# Profile: milliseconds per batch of each loader stage
# ---------------------------------------------------------------------------------------------

def _tfm_name(f) -> str:
    # aug_transforms merges Flip/Warp/Rotate/Zoom into one AffineCoordTfm (named after the first)
    # and Brightness/Contrast into one LightingTfm
    if isinstance(f, SharedGridAffine):
        return "affine: same, one grid per batch (SharedGridAffine)"
    if isinstance(f, AffineCoordTfm):
        return "affine: flip+rotate+zoom+warp (grid_sample)"
    if isinstance(f, LightingTfm):
        return "lighting: brightness+contrast"
    return type(f).__name__


def profile_dl(dl, n_batches: int, per_item: bool) -> dict[str, float]:
    """Median ms per batch of each stage, run by hand the way DataLoader does (one process)."""
    stages: dict[str, list[float]] = {}

    def add(name, t0):
        stages.setdefault(name, []).append((time.perf_counter() - t0) * 1000)

    idxs = list(range(len(dl.dataset)))
    rng = np.random.default_rng(0)
    for _ in range(n_batches):
        b = [int(i) for i in rng.choice(idxs, size=min(dl.bs, len(idxs)), replace=False)]
        if per_item:  # fastai: decode (Datasets type tfms), item tfms one by one, collate
            t = time.perf_counter()
            items = [dl.create_item(i) for i in b]
            add("decode files (PILImage/PILMask.create)", t)
            for f in dl.after_item.fs:
                t = time.perf_counter()
                items = [f(it, split_idx=0) for it in items]
                add(f"item: {type(f).__name__}", t)
            t = time.perf_counter()
            batch = dl.do_batch(items)
            add("collate", t)
        else:  # segstudio: one tensor gather
            t = time.perf_counter()
            batch = dl.do_batch(b)
            add("gather from cache", t)
        for f in dl.after_batch.fs:
            t = time.perf_counter()
            batch = f(batch, split_idx=0)
            add(f"batch: {_tfm_name(f)}", t)
    return {name: float(np.median(v)) for name, v in stages.items()}


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def run_format(fmt, images_dir, masks_dir, args, log) -> dict:
    res: dict = {"fmt": fmt}
    data, cache_s = segstudio_data(images_dir, masks_dir, args.size)
    res["cache_s"] = cache_s
    codes = list(data.codes)
    n_classes = len(codes)
    stats = dataset_stats(data)
    valid_stems = {Path(data.sources[i]).stem for i in data.valid_idx}
    res["n_train"], res["n_valid"] = len(data.train_idx), len(data.valid_idx)
    log(f"[{fmt}] cache built in {cache_s:.2f} s ({len(data.images)} items, {res['n_train']} train / "
        f"{res['n_valid']} valid, classes {codes})")

    # Loaders
    ss_dls = build_dataloaders(data, args.bs, DEVICE, augment=True, stats=stats, seed=args.seed)
    fa_dls = {}
    for nw in (0, None):
        dls = fastai_dls(images_dir, masks_dir, fmt, codes, valid_stems, args.size, args.bs, nw, stats,
                         res["n_train"])
        fa_dls[dls.train.fake_l.num_workers] = dls
    rates = loader_rates({"ss": ss_dls.train, **{nw: d.train for nw, d in fa_dls.items()}}, args.reps)
    res["ss_rate"] = rates.pop("ss")
    res["ss_batches"] = len(ss_dls.train)
    res["fa_rates"] = rates
    res["fa_best_nw"] = max(rates, key=rates.get)
    res["fa_rate"] = rates[res["fa_best_nw"]]
    n_epoch_imgs = sum(len(b) for b in ss_dls.train.chunkify(range(res["n_train"])))
    res["ss_first"] = n_epoch_imgs / (cache_s + n_epoch_imgs / res["ss_rate"])
    log(f"[{fmt}] fastai loader: " + ", ".join(f"nw={nw} {r:.1f} img/s" for nw, r in rates.items()) +
        f"; segstudio loader: {res['ss_rate']:.1f} img/s (cached), {res['ss_first']:.1f} img/s in a "
        "first epoch that pays the cache build")

    if not args.no_profile:
        res["prof_fa"] = profile_dl(fa_dls[0].train, args.profile_batches, per_item=True)
        res["prof_ss"] = profile_dl(ss_dls.train, args.profile_batches, per_item=False)

    # Training
    if args.epochs > 0:
        nw = res["fa_best_nw"] if args.fastai_train_workers is None else args.fastai_train_workers
        dls = fastai_dls(images_dir, masks_dir, fmt, codes, valid_stems, args.size, args.bs, nw, stats,
                         res["n_train"])
        res["fa_train_nw"] = dls.train.fake_l.num_workers
        res["fa_times"], (res["fa_dice"], res["fa_pc"]) = train_fastai(dls, args, n_classes)
        log(f"[{fmt}] fastai trained: {res['fa_times']}, Dice {res['fa_dice']:.3f}")
        config = segstudio_config(args, images_dir, masks_dir)
        res["ss_times"], (res["ss_dice"], res["ss_pc"]) = train_segstudio(config, data, n_classes)
        log(f"[{fmt}] segstudio trained: {res['ss_times']}, Dice {res['ss_dice']:.3f}")
    return res


def device_label() -> str:
    if DEVICE.type == "cuda":
        return f"{torch.cuda.get_device_name(DEVICE)} (fp32 on both sides)"
    return f"CPU x{torch.get_num_threads()} threads"


def print_report(results, args, total_s, load_before):
    w = print
    w("")
    w(f"segstudio vs plain fastai DataBlock -- N={args.n} slices {args.src}x{args.src} -> {args.size} px, "
      f"bs {args.bs}, {args.arch} (random init), {args.epochs} epoch(s), lr {args.lr:g}, "
      f"{device_label()}, torch {torch.__version__}")
    w("loader = one full epoch of dls.train incl. after_batch (augment + Normalize), warm-up excluded, "
      f"best of {args.reps}; epoch = train + valid")
    head = (f"{'format':6} {'pipeline':34} {'loader img/s':>12} {'ratio':>7} {'s/epoch':>8} {'ratio':>7} "
            f"{'Dice fg':>8}  per class")
    w(head)
    w("-" * len(head))
    for r in results:
        fmt = r["fmt"]
        for nw, rate in sorted(r["fa_rates"].items()):
            label = f"fastai DataBlock nw={nw}" + (" (default)" if nw else "")
            train_cols = f"{'':>8} {'':>7} {'':>8}"
            if "fa_times" in r and nw == r["fa_train_nw"]:
                train_cols = f"{np.mean(r['fa_times']):8.1f} {'1.00x':>7} {r['fa_dice']:8.3f}  " + \
                    "/".join(f"{d:.2f}" for d in r["fa_pc"][1:])
            w(f"{fmt:6} {label:34} {rate:12.1f} {ratio(rate, r['fa_rate']):>7} {train_cols}")
        train_cols = f"{'':>8} {'':>7} {'':>8}"
        if "ss_times" in r:
            ss_t, fa_t = np.mean(r["ss_times"]), np.mean(r["fa_times"])
            train_cols = f"{ss_t:8.1f} {ratio(fa_t, ss_t):>7} {r['ss_dice']:8.3f}  " + \
                "/".join(f"{d:.2f}" for d in r["ss_pc"][1:])
        w(f"{fmt:6} {'segstudio cache (build excluded)':34} {r['ss_rate']:12.1f} "
          f"{ratio(r['ss_rate'], r['fa_rate']):>7} {train_cols}")
        w(f"{fmt:6} {'segstudio 1st epoch incl. cache':34} {r['ss_first']:12.1f} "
          f"{ratio(r['ss_first'], r['fa_rate']):>7}   (cache build {r['cache_s']:.2f} s for "
          f"{r['n_train'] + r['n_valid']} items, once per dataset/size)")
    w("ratios: loader = segstudio or nw=0 img/s / fastai's best img/s; epoch = fastai s / segstudio s "
      "(>1: segstudio faster)")
    for r in results:
        ok_loader = r["ss_rate"] >= 3 * r["fa_rate"]
        line = f"target [{r['fmt']}]: loader >= 3x: {'PASS' if ok_loader else 'MISS'} ({ratio(r['ss_rate'], r['fa_rate'])})"
        if "ss_times" in r:
            ss_t, fa_t = np.mean(r["ss_times"]), np.mean(r["fa_times"])
            line += f"; epoch no slower: {'PASS' if ss_t <= fa_t * 1.05 else 'MISS'} ({ratio(fa_t, ss_t)})"
        w(line)

    if not args.no_profile:
        w("")
        w(f"loader profile, median ms per batch of {args.bs} over {args.profile_batches} batches (one process)")
        for r in results:
            for side, prof in (("fastai nw=0", r["prof_fa"]), ("segstudio", r["prof_ss"])):
                total = sum(prof.values())
                w(f"  [{r['fmt']}] {side}: total {total:.1f} ms/batch = {args.bs * 1000 / total:.0f} img/s")
                for name, ms in prof.items():
                    w(f"      {name:52} {ms:8.1f} ms  {100 * ms / total:5.1f}%")
    w(f"\n(total benchmark time {total_s:.0f} s; 1-min load average {load_before:.2f} before, "
      f"{os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs -- a load well above the benchmark's own "
      "means other processes competed and the figures are unreliable)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=48, help="number of slices (default 48)")
    p.add_argument("--size", type=int, default=256, help="training size in px (default 256)")
    p.add_argument("--src", type=int, default=512, help="source image size in px (default 512)")
    p.add_argument("--epochs", type=int, default=1, help="training epochs per side and format; 0 skips training")
    p.add_argument("--bs", type=int, default=8)
    p.add_argument("--arch", default="resnet18", choices=sorted(ARCHS))
    p.add_argument("--lr", type=float, default=3e-3, help="one-cycle max LR, all groups (segstudio's random-init default)")
    p.add_argument("--formats", default="png,dicom")
    p.add_argument("--reps", type=int, default=3, help="timed loader epochs per loader (best is reported)")
    p.add_argument("--fastai-train-workers", type=int, default=None,
                   help="num_workers for fastai's training run (default: its fastest loader setting)")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--profile-batches", type=int, default=9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both sides train and augment")
    p.add_argument("--keep", default="", help="generate into (and keep) this folder instead of a temp one")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)

    os.environ.setdefault("TORCH_HOME", tempfile.mkdtemp(prefix="bench-torch-"))
    t_start = time.perf_counter()
    load_before = os.getloadavg()[0]

    def log(msg):
        if not args.quiet:
            print(f"{time.perf_counter() - t_start:7.1f}s  {msg}", flush=True)

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segstudio-bench-"))
    try:
        t = time.perf_counter()
        sources = make_sources(root, args.n, args.src)
        log(f"generated {args.n} slices ({args.src} px) as DICOM and PNG in {time.perf_counter() - t:.1f} s: {root}")
        results = [run_format(fmt, *sources[fmt], args, log) for fmt in args.formats.split(",")]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_report(results, args, time.perf_counter() - t_start, load_before)


if __name__ == "__main__":
    main()
