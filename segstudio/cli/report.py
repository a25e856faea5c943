"""`segstudio report RUN [--out FILE.html]`: one self-contained HTML page about a run (data,
settings, learning curves, per-case metrics worst first, pictures of the worst and best cases,
calibration, versions) to share."""

from __future__ import annotations

import argparse
import sys

from ..config import Device
from .evaluate import positive_mm
from .interrupt import ctrl_c_stops


def add_parser(subparsers) -> argparse.ArgumentParser:
    rep = subparsers.add_parser(
        "report", help="write one self-contained HTML page about a run, to share (e.g. by mail)")
    rep.add_argument("run", metavar="RUN", help="the run folder")
    rep.add_argument("--out", metavar="FILE.html", help="where to write the page (default: RUN/report.html)")
    rep.add_argument("--device", default="auto", choices=[d.value for d in Device],
                     help="device predicting the validation cases (default: auto)")
    rep.add_argument("--tolerance", type=positive_mm, default=1.0, metavar="MM",
                     help="NSD's tolerance in mm (pixels for 2-D images) when the cases are scored now (default 1)")
    return rep


def run(args) -> int:
    """0 when the page was written, 1 on an error, 130 on Ctrl-C."""
    from ..errors import Cancelled, SegstudioError
    from ..reporting import write_run_report

    with ctrl_c_stops("the report") as stop:
        try:
            path = write_run_report(args.run, args.out, progress=_Progress(), should_stop=stop.is_set,
                                    device=args.device, tolerance_mm=args.tolerance)
        except (Cancelled, KeyboardInterrupt):  # a second Ctrl-C: at once
            print("\ncancelled; no report was written", file=sys.stderr)
            return 130
        except SegstudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {path}")
    return 0


class _Progress:
    """One line per new step on stderr (the step's count when it has one)."""

    def __init__(self):
        self.last = ""

    def __call__(self, done: int, total: int, message: str) -> None:
        step = message.split(" ", 1)[0]
        if total and done < total and step == self.last:
            return
        self.last = step
        count = f" ({done}/{total})" if total else ""
        print(f"report: {message}{count}", file=sys.stderr, flush=True)
