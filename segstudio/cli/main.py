"""Command line: `segstudio [--demo]` opens the app; `inspect`, `train` and `predict` run headless."""

from __future__ import annotations

import argparse
from importlib import metadata
import multiprocessing
import os
import sys
import warnings
from pathlib import Path

from .. import __version__
from ..config import Arch, DataConfig, Device, InputMode, Loss, Norm, Precision, Schedule, TrainConfig


IMAGES_HELP = ("image folder (PNG, TIFF, JPEG, DICOM...), a folder of 3-D scans, or a dataset root: a "
               "Decathlon / nnU-Net or KiTS folder, or one holding images/ and masks/")
MASKS_HELP = "mask folder, masks paired with images by name"


def build_parser() -> argparse.ArgumentParser:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="segstudio", description="Train and review segmentation networks.")
    p.add_argument("--version", action="store_true", help="print versions and the compute device")
    p.add_argument("--demo", action="store_true", help="open the app with the built-in sample dataset")
    p.add_argument("--demo-volumes", action="store_true",
                   help="open the app with the built-in sample of 3-D scans (NIfTI)")
    p.add_argument("--images", help="image folder to open in the app")
    p.add_argument("--masks", help="mask folder to open in the app")
    p.add_argument("--self-test", action="store_true",
                   help="open the window, train one tiny epoch on the sample, predict, and exit 0 if all worked")
    p.add_argument("--install-desktop-entry", action="store_true",
                   help="add segstudio to this user's applications menu (Linux)")
    p.add_argument("--uninstall-desktop-entry", action="store_true", help="remove that menu entry again")
    sub = p.add_subparsers(dest="command")

    ins = sub.add_parser("inspect", help="print the dataset report")
    ins.add_argument("--images", required=True, help=IMAGES_HELP)
    ins.add_argument("--masks", default="", help=MASKS_HELP + "; without it, the images are checked alone")
    ins.add_argument("--window", default="auto", help="DICOM window: auto, file, percentile, a preset or W/L")
    ins.add_argument("--axis", default="axial", choices=["axial", "coronal", "sagittal"],
                     help="3-D scans: the slices to count")
    add_mask_options(ins)

    tr = sub.add_parser("train", help="train a U-Net and write a run folder")
    src = tr.add_mutually_exclusive_group()
    src.add_argument("--demo", action="store_true", help="train on the built-in sample dataset")
    src.add_argument("--demo-volumes", action="store_true", help="train on the built-in sample of 3-D scans")
    src.add_argument("--images", help=IMAGES_HELP)
    tr.add_argument("--masks", help=MASKS_HELP)
    tr.add_argument("--config", help="a saved TrainConfig JSON (e.g. a run's config.json)")
    tr.add_argument("--data-root", help="the folder the config's relative data folders are in (a cluster job)")
    tr.add_argument("--resume", metavar="RUN_DIR",
                    help="continue a stopped or crashed run from its last checkpoint (its own settings)")
    tr.add_argument("--init-from", metavar="RUN_DIR",
                    help="continue from a run: start from its best model, on its data (with any corrections) "
                         "unless --images is given, for a few epochs at lower learning rates; from a fold set: "
                         "a new fold set, each fold from its parent fold, every case in its parent's fold")
    tr.add_argument("--epochs", type=at_least(1), help=f"default {defaults.epochs}")
    tr.add_argument("--time-budget", type=seconds, metavar="SECONDS",
                    help="train for about this much wall time in all (loading included) instead of --epochs: the "
                         "epochs that fit are measured on the first steps and the schedule is sized to them "
                         "(config.json records them)")
    tr.add_argument("--size", type=at_least(32), help="training image size in pixels (square): the whole image "
                                                      f"resized to it, or the patch size (default {defaults.size})")
    tr.add_argument("--input", dest="input_mode", choices=[m.value for m in InputMode],
                    help="whole images resized, or patches at native resolution predicted by sliding window "
                         "(default auto: patches when the images' longer side is at least 3 x --size)")
    tr.add_argument("--scale", type=scale_factor, help="patches: scale the images by this factor first (0.5: half)")
    tr.add_argument("--bs", type=at_least(0), help="batch size (default 0: auto, 2 to 8 by the dataset's size: "
                                                   "a batch covers at most 5%% of the training pixels)")
    tr.add_argument("--arch", choices=[a.value for a in Arch],
                    help=f"the U-Net's encoder (default {defaults.arch.value})")
    tr.add_argument("--lr-lo", type=learning_rate, help="learning rate of the earliest encoder group")
    tr.add_argument("--lr-hi", type=learning_rate, help="learning rate of the decoder")
    tr.add_argument("--schedule", choices=[s.value for s in Schedule])
    tr.add_argument("--freeze-epochs", type=at_least(0), help="fine_tune: epochs with a frozen encoder")
    tr.add_argument("--loss", choices=[s.value for s in Loss])
    tr.add_argument("--norm", choices=[n.value for n in Norm],
                    help="the U-Net's normalisation layers: batch (fastai's), instance (nnU-Net's), or auto "
                         "(default: instance from a random encoder, batch with ImageNet weights)")
    tr.add_argument("--deep-supervision", action=argparse.BooleanOptionalAction, default=None,
                    help="extra losses on the decoder's 1/2, 1/4, 1/8 resolution outputs (nnU-Net's)")
    tr.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None)
    tr.add_argument("--weights", help="local encoder weights file (torchvision state dict)")
    tr.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    tr.add_argument("--device", choices=[d.value for d in Device])
    tr.add_argument("--precision", choices=[d.value for d in Precision])
    tr.add_argument("--seed", type=int)
    tr.add_argument("--valid-pct", type=validation_share,
                    help="validation share: a fraction (0.2) or a percentage (20)")
    tr.add_argument("--window")
    add_mask_options(tr, default=None)
    tr.add_argument("--axis", choices=["axial", "coronal", "sagittal"], help="3-D scans: the slices to train on")
    tr.add_argument("--context", type=at_least(0),
                    help="3-D scans: neighbouring slices on each side as input channels (1: 2.5-D)")
    tr.add_argument("--empty-share", type=validation_share,
                    help="share of the slices without foreground used each epoch (a fraction or a percentage)")
    tr.add_argument("--out", help="runs folder (default: the user data folder)")
    tr.add_argument("--keep-checkpoint", action="store_true", default=None,
                    help="keep checkpoint.pth (model and optimizer, about 3x the model) when the run finishes; "
                         "it is only needed to resume an unfinished run, and removed otherwise")
    tr.add_argument("--name", help="run name")
    tr.add_argument("--events", choices=["text", "jsonl"], default="text",
                    help="jsonl: print every event (batches, epochs, previews, the end) as one JSON object "
                         "a line on stdout, for another program to follow the run")
    tr.add_argument("--folds", type=at_least(2), nargs="?", const=5, metavar="K",
                    help="cross-validation: K runs (default 5) in one fold-set folder (--out/--name), each "
                         "validated on one fold, grouped by patient or scan; predict with the folder averages them. "
                         "--resume FOLDSET continues a stopped fold set")
    tr.add_argument("--fold", type=at_least(0), metavar="I",
                    help="with --folds K: train fold I only, into the fold set --out/--name (folds on several machines)")
    tr.add_argument("--no-metrics", dest="metrics", action="store_false",
                    help="do not score the best model's validation cases when the run finishes (by default "
                         "Dice, NSD and HD95 per case and class go to metrics_per_case.csv in the run folder, "
                         "and a calibration temperature to model.json)")

    pr = sub.add_parser("predict", help="write one mask PNG per image")
    pr.add_argument("--model", required=True,
                    help="a run folder holding model.pth + model.json, a fold set (train --folds: its folds averaged), "
                         "or a model.onnx `segstudio export` wrote")
    pr.add_argument("--images", required=True,
                    help="the images (or 3-D scans) to predict; a Decathlon / nnU-Net dataset root: its imagesTs")
    pr.add_argument("--out", required=True, help="the folder to write the masks into (segstudio replaces only "
                                                 "files it wrote there itself)")
    pr.add_argument("--device", default="auto", choices=[d.value for d in Device])
    pr.add_argument("--save-probabilities", dest="probabilities", action="store_true",
                    help="also save the class probabilities as NAME.npz (nnU-Net's convention: float16 under the "
                         "key 'probabilities', (K, H, W) per image, (K, Z, Y, X) per scan; a fold set's averaged; "
                         "with the run's calibration temperature applied, when model.json has one)")
    pr.add_argument("--probabilities", dest="probabilities", action="store_true", help=argparse.SUPPRESS)  # old name
    pr.add_argument("--dicom-seg", action="store_true",
                    help="also write one DICOM SEG per DICOM series, referencing its source images")
    pr.add_argument("--nifti", action="store_true",
                    help="DICOM series folders (3-D scans): also write each prediction as NIfTI")
    pr.add_argument("--uncertainty", action="store_true",
                    help="average each prediction with its mirror image's, write an entropy map per image "
                         "(*_uncertainty.png) and uncertainty.csv ranking the images most uncertain first")
    pr.add_argument("--allow-missing-folds", action="store_true",
                    help="--model is a fold set with folds that have no model: predict with the others")
    pr.add_argument("--tta", action="store_true",
                    help="test-time augmentation: average each prediction with its mirror image's "
                         "(twice the time; usually a little more accurate)")
    ex = sub.add_parser("export", help="write a run's model as ONNX or TorchScript, checked against PyTorch")
    ex.add_argument("--model", required=True, help="a run folder holding model.pth + model.json")
    ex.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    ex.add_argument("--out", help="the file to write (default: model.onnx / model.pt in the run folder)")
    from .weights import add_parser as add_weights_parser

    add_weights_parser(sub)
    from .job import add_parser as add_job_parser

    add_job_parser(sub)
    from .evaluate import add_parser as add_evaluate_parser

    add_evaluate_parser(sub)
    from .report import add_parser as add_report_parser

    add_report_parser(sub)
    return p


def add_mask_options(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument("--labels", choices=["auto", "classes", "instances"], default=default,
                        help="mask values: auto (instance labels are detected and read as foreground), "
                             "classes (each value a class) or instances (every non-zero value is foreground)")
    parser.add_argument("--class-names", type=class_names,
                        help="foreground class names in value order, comma-separated (e.g. liver,kidney)")


def class_names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"give names separated by commas, got {text!r}")
    return names


def at_least(minimum: int):
    """An argparse type: an integer >= minimum."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = "integer"
    return parse


def seconds(text: str) -> float:
    """A positive number of seconds."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def validation_share(text: str) -> float:
    """A fraction in (0, 1), or a percentage in [1, 100)."""
    value = float(text)
    share = value / 100 if value >= 1 else value
    if not 0 < share < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction (0.2) or a percentage (20), got {text}")
    return share


def scale_factor(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1, got {text}")
    return value


def learning_rate(text: str) -> float:
    value = float(text)
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    prepare_process()
    # a library warning on every command, nothing the user can act on
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated")
    args = build_parser().parse_args(argv)
    if args.version:
        print(versions())
        return 0
    if args.self_test:
        from ..ui.self_test import run_self_test

        return run_self_test()
    if args.install_desktop_entry or args.uninstall_desktop_entry:
        return cmd_desktop_entry(install=args.install_desktop_entry)
    if args.command is None:
        from ..ui.app import run_app

        return run_app(demo=args.demo, demo_volumes=args.demo_volumes, images=args.images, masks=args.masks)
    from .weights import run as cmd_weights
    from .job import run as cmd_job
    from .evaluate import run as cmd_evaluate
    from .report import run as cmd_report
    from .train import cmd_train

    return {"inspect": cmd_inspect, "train": cmd_train, "predict": cmd_predict,
            "export": cmd_export, "weights": cmd_weights,
            "job": cmd_job, "evaluate": cmd_evaluate, "report": cmd_report}[args.command](args)


def prepare_process() -> None:
    """First steps of a frozen or windowed process: multiprocessing's child processes re-run this
    executable (freeze_support lets them), and a bundle without a console (or pythonw) has no
    stdout/stderr, which tqdm, torch.hub and print write to."""
    multiprocessing.freeze_support()
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))


def versions() -> str:
    import fastai
    import torch

    from ..model.device import describe_device

    qt = "not installed"
    for dist in ("PySide6-Essentials", "PySide6"):  # read from the metadata: the core imports no Qt
        try:
            qt = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            pass
    kind, name = describe_device("auto")
    return (f"segstudio {__version__}\ntorch {torch.__version__}\nfastai {fastai.__version__}\n"
            f"PySide6 {qt}\ndevice {kind}: {name}")


def cmd_desktop_entry(install: bool) -> int:
    if not sys.platform.startswith("linux"):
        print("Desktop entries are for Linux desktops; for Windows and macOS, see packaging/README.md "
              "in segstudio's source (a .app bundle, or an installer around the Windows bundle).", file=sys.stderr)
        return 2
    from . import desktop_entry
    from ..errors import SegstudioError

    try:
        paths = desktop_entry.install() if install else desktop_entry.uninstall()
    except (SegstudioError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"{'wrote' if install else 'removed'} {path}")
    if install:
        print(f"segstudio is in the applications menu; it starts {' '.join(desktop_entry.launch_command())}")
    elif not paths:
        print("no segstudio desktop entry was installed for this user")
    return 0


def cmd_inspect(args) -> int:
    from ..data import inspect_dataset
    from ..errors import DataError

    try:
        report = inspect_dataset(DataConfig(images=args.images, masks=args.masks, window=args.window,
                                            labels=args.labels, class_names=args.class_names or [],
                                            axis=args.axis))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(report.format())
    except BrokenPipeError:  # `segstudio inspect … | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w", encoding="utf-8")
    why = inspect_failure(report, labelled=not report.images_only)
    if why:
        print(f"error: {why}", file=sys.stderr)
    return 1 if why else 0


def inspect_failure(report, labelled: bool) -> str:
    """Why `inspect` exits 1 ("" when the dataset can be used): nothing to train on, or no
    readable image."""
    if not labelled:
        return "" if report.n_images else "no readable image found (see the report above)"
    if report.cannot_train:
        return f"cannot train: {report.cannot_train}"
    if not report.n_pairs:
        return (f"no usable image/mask pairs among {report.n_images} image(s) and {report.n_masks} mask(s): "
                "masks pair with images by name (see the report above)")
    return ""


def cmd_predict(args) -> int:
    from ..errors import SegstudioError
    from ..inference import Predictor
    from ..files import NotWritable, check_writable

    try:
        check_writable(args.out)  # before the model is loaded and anything predicted
        predictor = Predictor.load(args.model, device=args.device, allow_missing_folds=args.allow_missing_folds)
        if "ensemble" in predictor.meta:
            print(f"ensemble of folds {', '.join(map(str, predictor.meta['ensemble']['folds']))} "
                  "(their class probabilities averaged)", file=sys.stderr)
        predictor.tta = args.tta
        report = predictor.predict_folder(args.images, args.out, save_probabilities=args.probabilities,
                                          dicom_seg=args.dicom_seg, nifti=args.nifti,
                                          uncertainty=args.uncertainty, progress=ProgressPrinter())
    except NotWritable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SegstudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(f"skipped {problem.path}: {problem.reason}", file=sys.stderr)
    for problem in report.mismatches:
        print(f"warning: {problem.path}: {problem.reason}", file=sys.stderr)
    for problem in report.notes + report.seg_failures:
        print(f"note: {problem.path}: {problem.reason}", file=sys.stderr)
    for problem in report.left_alone:
        print(f"left alone {problem.path}: {problem.reason}", file=sys.stderr)
    print(f"wrote {len(report.written)} mask(s) to {report.out_dir}")
    if report.uncertainty:
        ranked = sorted(report.uncertainty.items(), key=lambda kv: -kv[1])[:5]
        print("most uncertain: " + ", ".join(f"{Path(m).name} ({u:.3f})" for m, u in ranked)
              + " (all in uncertainty.csv)")
    if args.dicom_seg or report.dicom_segs:
        print(f"wrote {len(report.dicom_segs)} DICOM SEG file(s)")
    if report.left_alone:
        print(f"{len(report.left_alone)} existing file(s) left alone (segstudio replaces only its own "
              "earlier predictions); choose an empty folder to write them all")
    return 0 if report.written or report.dicom_segs else 1


class ProgressPrinter:
    """predict_folder's progress on stderr: which image (or scan) of how many, time spent and time
    left; a line when it starts, then at most one every `every` seconds, and one at the end."""

    def __init__(self, every: float = 5.0, clock=None):
        import time

        self.every, self.clock = every, clock or time.monotonic
        self.start = self.last = None

    def __call__(self, done: int, total: int, name: str) -> None:
        now = self.clock()
        if self.start is None:
            self.start = now
        elif done < total and now - self.last < self.every:
            return
        self.last = now
        spent = now - self.start
        if done >= total:
            print(f"predicted {total} of {total} in {clock_time(spent)}", file=sys.stderr, flush=True)
            return
        left = f", about {clock_time(spent / done * (total - done))} left" if done else ""
        print(f"predicting {done + 1} of {total}: {name} ({clock_time(spent)} so far{left})",
              file=sys.stderr, flush=True)


def clock_time(seconds: float) -> str:
    """0:07, 12:30, 1:02:03."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def cmd_export(args) -> int:
    from ..errors import SegstudioError
    from ..inference.export import export_model
    from ..files import NotWritable

    try:
        report = export_model(args.model, args.format, args.out)
    except NotWritable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SegstudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if "differs from PyTorch" in str(exc) else 2
    meta = report.meta
    print(f"wrote {report.path} ({report.format}, {Path(report.path).stat().st_size / 1e6:.1f} MB)")
    print(f"  {meta['arch']} U-Net, classes {', '.join(meta['codes'])}, {meta['size']} px, window {meta['window']}")
    print(f"  input:  {meta['exported']['input']}")
    print(f"  output: {meta['exported']['output']}")
    print(f"checked against PyTorch on sample images: probabilities differ by at most {report.max_abs_diff:.1e} "
          f"(tolerance {report.tolerance:.1e}: float32 precision at this model's largest logit, "
          f"{report.logit_scale:.0f}); the masks agree on {report.mask_agreement:.2%} of the pixels")
    return 0
