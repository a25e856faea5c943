"""`segstudio evaluate --pred DIR --truth DIR [--tolerance MM] [--out DIR]`: predictions scored
against ground truth, per case and class (Dice, NSD, HD95, ASSD)."""

from __future__ import annotations

import argparse
import math
import sys
import time

from .interrupt import ctrl_c_stops


def add_parser(subparsers) -> argparse.ArgumentParser:
    ev = subparsers.add_parser(
        "evaluate", help="score predicted masks against ground truth: Dice, NSD, HD95, ASSD per case and class")
    ev.add_argument("--pred", required=True, metavar="DIR",
                    help="the predicted masks (PNG/TIFF/DICOM, NIfTI/NRRD/MHA, DICOM SEG)")
    ev.add_argument("--truth", required=True, metavar="DIR",
                    help="the ground-truth masks, paired with the predictions by case name")
    ev.add_argument("--tolerance", type=positive_mm, default=1.0, metavar="MM",
                    help="NSD's tolerance in mm (pixels for image masks without spacing; default 1)")
    ev.add_argument("--out", metavar="DIR",
                    help="where to write metrics_per_case.csv and summary.json (default: the --pred folder)")
    ev.add_argument("--workers", type=int, default=None, metavar="N",
                    help="processes scoring cases in parallel (default: one per CPU core, up to 8, for scans)")
    return ev


def positive_mm(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of mm, got {text}")
    return value


def run(args) -> int:
    """0 when cases were scored (problems are printed too), 1 when none could be, 130 on Ctrl-C."""
    from ..errors import Cancelled, SegstudioError
    from ..evaluation.evaluate import evaluate_folders

    with ctrl_c_stops("scoring") as stop:
        try:
            report = evaluate_folders(args.pred, args.truth, args.tolerance, out_dir=args.out or args.pred,
                                      progress=_Progress(), should_stop=stop.is_set, workers=args.workers)
        except (Cancelled, KeyboardInterrupt):  # a second Ctrl-C: at once
            print("\ncancelled; nothing was written", file=sys.stderr)
            return 130
        except SegstudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    for line in summary_lines(report):
        print(line)
    return 0 if report.rows else 1


def summary_lines(report) -> list[str]:
    """The report as a few lines: one per class (mean [95% interval] of each metric), then
    missing cases, problems and the files written."""
    s = report.summary
    unit = {"mm": "mm", "px": "px"}.get(s["distance_unit"], "mm or px")
    tol = f"{report.tolerance_mm:g}"
    lines = [f"{s['cases']} case(s) scored; distances in {unit}; NSD at {tol} {unit}",
             f"{'class':16} {'cases':>5}  " + "".join(f"{m:24}" for m in ("Dice", "NSD", f"HD95 ({unit})",
                                                                          f"ASSD ({unit})"))
             + "empty in truth/pred/both"]
    for label, c in s["classes"].items():
        name = c["name"] if c["name"] == f"class {label}" else f"{label} {c['name']}"
        cells = "".join(f"{_stat(c[m]):24}" for m in ("dice", "nsd", "hd95", "assd"))
        empty = c["empty"]
        lines.append(f"{name:16.16} {c['cases']:5}  {cells}{empty['truth']}/{empty['prediction']}/{empty['both']}")
    lines.append("mean [bootstrap 95% interval] over the cases where a metric is defined")
    for what, names in (("truth case(s) without a prediction", report.missing_predictions),
                        ("prediction(s) without a ground truth", report.missing_truth)):
        if names:
            shown = ", ".join(names[:10]) + (f", ... ({len(names) - 10} more)" if len(names) > 10 else "")
            lines.append(f"{len(names)} {what}: {shown}")
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s):")
        lines += [f"  {name}: {reason}" for name, reason in report.problems]
    lines += [f"wrote {p}" for p in report.written]
    return lines


def _stat(stat: dict) -> str:
    if stat["mean"] is None:
        return "-"
    low, high = stat["ci95"]
    return f"{stat['mean']:.3g} [{low:.3g}, {high:.3g}]"


class _Progress:
    """Cases scored, on stderr: one updating line on a terminal, a line per 10% otherwise."""

    def __init__(self):
        self.tty, self.last, self.shown = sys.stderr.isatty(), 0.0, -1

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.tty:
            now = time.monotonic()
            if now - self.last >= 0.2 or done == total:
                self.last = now
                end = "\n" if done == total else ""
                print(f"\rscoring: {done}/{total} {message[:40]:40}", end=end, file=sys.stderr, flush=True)
            return
        step = done * 10 // max(total, 1)
        if step > self.shown and done:
            self.shown = step
            print(f"scoring: {done}/{total}", file=sys.stderr, flush=True)
