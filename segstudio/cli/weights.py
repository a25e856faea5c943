"""`segstudio weights list|download|import`: the ImageNet encoder weights in torchvision's cache."""

from __future__ import annotations

import argparse
import sys
import time

from ..config import Arch
from .interrupt import ctrl_c_stops

ARCHS = [a.value for a in Arch]


def add_parser(subparsers) -> argparse.ArgumentParser:
    w = subparsers.add_parser("weights", help="list, download or import the pretrained (ImageNet) encoder weights")
    actions = w.add_subparsers(dest="weights_command", required=True)
    actions.add_parser("list", help="each architecture: whether its weights are in the local cache, and where")
    dl = actions.add_parser("download", help="download torchvision's ImageNet weights into the cache "
                                             "(from $SEGSTUDIO_WEIGHTS_URL when set)")
    dl.add_argument("arch", choices=ARCHS)
    dl.add_argument("--force", action="store_true", help="download again even when the weights are cached")
    im = actions.add_parser("import", help="copy torchvision's published weights file, obtained elsewhere, "
                                           "into the cache (checked against its published checksum)")
    im.add_argument("arch", choices=ARCHS)
    im.add_argument("file")
    return w


def run(args) -> int:
    """0 when done, 1 on an error, 130 when a download was stopped with Ctrl-C."""
    from ..errors import Cancelled, SegstudioError
    from ..model import weights_download as wd

    if args.weights_command == "list":
        for arch in ARCHS:
            info = wd.weights_info(arch)
            print(f"{arch:9} {'cached' if info.cached else 'not cached':10}  {info.file}")
        return 0
    try:
        if args.weights_command == "import":
            path = wd.import_weights(args.arch, args.file)
            print(f"copied {args.file} to {path}")
            return 0
        info = wd.weights_info(args.arch)
        if info.cached and not args.force:
            print(f"{args.arch} weights are already in the cache: {info.file}")
            return 0
        print(f"downloading {info.url}", file=sys.stderr)
        progress = Progress()
        with ctrl_c_stops("the download") as stop:
            try:
                path = wd.download_weights(args.arch, progress=progress, should_stop=stop.is_set)
            finally:
                progress.close()
        print(f"wrote {path}")
        return 0
    except (Cancelled, KeyboardInterrupt):
        print("cancelled; nothing was written", file=sys.stderr)
        return 130
    except SegstudioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


class Progress:
    """Download progress on stderr: one updating line on a terminal, a line per 10 % (or per 10 MB
    when the size is unknown) otherwise."""

    def __init__(self):
        self.tty, self.last, self.shown, self.open = sys.stderr.isatty(), 0.0, -1, False

    def __call__(self, done: int, total: int) -> None:
        text = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB ({done * 100 // total} %)" if total else f"{done / 1e6:.1f} MB"
        if self.tty:
            now = time.monotonic()
            if now - self.last >= 0.2 or done == total:
                self.last, self.open = now, True
                print(f"\r{text}", end="", file=sys.stderr, flush=True)
            return
        step = done * 10 // total if total else done // 10_000_000
        if step > self.shown:
            self.shown = step
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.open:
            print(file=sys.stderr)
            self.open = False
