"""`segstudio --self-test`: check that an install or a frozen bundle works, end to end, through the GUI.

Opens the main window (offscreen when there is no display), loads the built-in sample dataset, trains
one tiny epoch with live plots, computes the review, predicts the sample folder (PNG masks and DICOM
SEG), and exits 0; any error message, failure or timeout exits 1 and says which step failed.
Settings and runs go to a temporary folder, so the user's own are untouched.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

TINY_RUN = {"epochs": 1, "size": 64, "bs": 4, "pretrained": False, "freeze_epochs": 0}
TIMEOUT_S = {"window": 60, "load": 120, "train": 600, "review": 300, "predict": 300, "volumes": 600}


class SelfTestFailed(Exception):
    pass


def use_offscreen_without_display() -> None:
    """Qt's offscreen platform where no display server is reachable (CI, ssh sessions)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        if not os.environ.get("QT_QPA_PLATFORM"):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"


def run_self_test() -> int:
    """Run every step; prints one line per step and returns the exit code (0: all passed)."""
    use_offscreen_without_display()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="segstudio-self-test-") as tmp:
        test = SelfTest(Path(tmp))
        previous_hook = sys.excepthook
        sys.excepthook = test.excepthook  # Qt prints exceptions raised in slots and goes on
        try:
            test.run()
        except SelfTestFailed as exc:
            print(f"FAIL  {exc}", flush=True)
            return 1
        finally:
            test.close()
            sys.excepthook = previous_hook
    print(f"self-test passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


class SelfTest:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.errors: list[str] = []
        self.window = None
        self.app = None
        self.run_dir = ""  # the run the train step made

    def excepthook(self, kind, value, tb) -> None:
        traceback.print_exception(kind, value, tb)
        self.errors.append(f"{kind.__name__}: {value}")

    def step(self, name: str, action: Callable[[], str]) -> None:
        t0 = time.monotonic()
        try:
            detail = action()
            if self.errors:
                raise SelfTestFailed(self.errors[0])
        except SelfTestFailed as exc:
            raise SelfTestFailed(f"{name}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a self-test reports every failure as a failed step
            raise SelfTestFailed(f"{name}: {type(exc).__name__}: {exc}") from None
        print(f"ok    {name:<14} {time.monotonic() - t0:6.1f} s  {detail}", flush=True)

    def wait(self, done: Callable[[], bool], what: str) -> None:
        """Run the event loop until done() holds, an error message arrives or the step's time is up."""
        from PySide6.QtCore import QEventLoop, QTimer

        deadline = time.monotonic() + TIMEOUT_S[what]
        loop = QEventLoop()
        timer = QTimer(interval=25)
        timer.timeout.connect(lambda: (done() or self.errors or time.monotonic() > deadline) and loop.quit())
        timer.start()
        loop.exec()
        timer.stop()
        if self.errors:
            raise SelfTestFailed(self.errors[0])
        if not done():
            raise SelfTestFailed(f"did not finish within {TIMEOUT_S[what]} s")

    def _collect(self, text: str) -> None:
        self.errors.append(text.replace("\n", " / "))

    def run(self) -> None:
        for name, action in (("open window", self.open_window), ("resources", self.check_resources),
                             ("load sample", self.load_sample), ("train", self.train),
                             ("review", self.review), ("predict", self.predict), ("volumes", self.volumes),
                             ("render", self.render)):
            self.step(name, action)

    def check_resources(self) -> str:
        from segstudio.resource_paths import SHIPPED, resources_dir
        from segstudio.ui import resources

        root = resources_dir()
        if root is None or not resources.stylesheet() or resources.app_icon().isNull():
            raise SelfTestFailed("the resources folder (stylesheet, icons) was not found")
        missing = [name for name in SHIPPED if not (root / name).exists()]
        if missing or resources.icon("train").isNull():
            raise SelfTestFailed(f"{root} lacks {', '.join(missing) or 'icons/train.svg'}")
        return str(root)

    def open_window(self) -> str:
        from PySide6.QtCore import QSettings

        from segstudio.ui.app import make_app
        from segstudio.ui.main_window import MainWindow
        from segstudio.ui.settings import Settings

        self.app = make_app()
        settings = Settings(QSettings(str(self.tmp / "settings.ini"), QSettings.Format.IniFormat))
        self.window = w = MainWindow(settings=settings)
        w.error_reported.connect(self._collect)
        w.show()
        self.wait(lambda: w.environment is not None, "window")
        return f"Qt platform {self.app.platformName()}, {w.label_device.text()}"

    def load_sample(self) -> str:
        w = self.window
        w.open_sample()
        # before the sample task returns and the load starts, so the data is read at the tiny size
        w.train_panel.settings.update(**TINY_RUN, out_dir=str(self.tmp / "runs"))
        self.wait(lambda: w.data_panel.dataset is not None and not w.data_panel.busy, "load")
        d = w.data_panel.dataset
        return f"{len(d)} pairs, classes {', '.join(d.codes)}, {d.size} px"

    def train(self) -> str:
        from segstudio.training import events as ev

        tp = self.window.train_panel
        if not tp.start("train"):
            raise SelfTestFailed("the Train button did not start a run")
        self.wait(lambda: not tp.running, "train")
        final = tp.last_final
        if not isinstance(final, ev.Finished):
            raise SelfTestFailed(f"the run ended with {type(final).__name__}: {getattr(final, 'message', '')}")
        if not tp.plots.loss or not tp.plots.dice_mean:
            raise SelfTestFailed("the live plots received no loss or Dice")
        self.run_dir = str(final.run_dir)
        return f"{final.epochs_done} epoch, {len(tp.plots.loss)} batches plotted, Dice {final.best_dice:.3f}"

    def review(self) -> str:
        rp = self.window.review_panel
        self.wait(lambda: rp.run_dir == self.run_dir and not rp.busy, "review")
        if not rp.items:
            raise SelfTestFailed("the review has no images")
        return f"{len(rp.items)} validation images with predictions"

    def predict(self) -> str:
        rp = self.window.review_panel
        images = self.window.data_panel.data_config().images
        out = self.tmp / "predicted"
        out.mkdir()
        if not rp.predict_folder(images, str(out)):
            raise SelfTestFailed("prediction did not start")
        self.wait(lambda: not rp.busy, "predict")
        report, n_images = rp.last_export, len(self.window.data_panel.dataset)
        if report is None or report.problems:
            problems = report.problems if report else []
            listed = "; ".join(f"{p.path}: {p.reason}" for p in problems[:3])
            raise SelfTestFailed(f"{len(problems)} problem(s): {listed}")
        masks = [p for p in out.glob("*.png") if not p.stem.endswith("_color")]
        if len(masks) < n_images:
            raise SelfTestFailed(f"{len(masks)} mask files for {n_images} images")
        if not report.dicom_segs:  # the sample is DICOM
            raise SelfTestFailed("no DICOM SEG was written")
        return f"{len(masks)} mask PNGs, {len(report.dicom_segs)} DICOM SEG file(s)"

    def volumes(self) -> str:
        """The sample of 3-D scans: loaded from its Decathlon layout, one tiny 2.5-D epoch, the
        review of its scans, and predictions written as NIfTI in the scans' geometry."""
        from segstudio.training import events as ev

        w = self.window
        w.open_volume_sample()
        w.train_panel.settings.update(**TINY_RUN, out_dir=str(self.tmp / "runs"))
        self.wait(lambda: w.state.dataset is not None and w.state.dataset.volumetric
                  and not w.data_panel.busy, "volumes")
        tp, rp, before = w.train_panel, w.review_panel, self.run_dir
        if not tp.start("train"):
            raise SelfTestFailed("the Train button did not start a run on the scans")
        self.wait(lambda: not tp.running, "volumes")
        if not isinstance(tp.last_final, ev.Finished):
            raise SelfTestFailed(f"the run on the scans ended with {type(tp.last_final).__name__}")
        run_dir = str(tp.last_final.run_dir)
        self.wait(lambda: rp.run_dir == run_dir and not rp.busy, "volumes")
        if not rp.items or not rp.items[0].is_scan:
            raise SelfTestFailed("the review shows no scans")
        out = self.tmp / "predicted-scans"
        images = w.state.dataset.volumes[0].sources[0]
        if not rp.predict_folder(str(__import__("pathlib").Path(images).parent), str(out)):
            raise SelfTestFailed("prediction of the scans did not start")
        self.wait(lambda: not rp.busy, "volumes")
        written = sorted(out.glob("*.nii.gz"))
        if len(written) != len(w.state.dataset.volumes) or not (out / "volumes.csv").is_file():
            raise SelfTestFailed(f"{len(written)} NIfTI predictions for {len(w.state.dataset.volumes)} scans")
        self.run_dir = before
        return (f"{len(w.state.dataset.volumes)} scans, 3-D Dice {tp.last_final.best_dice:.3f}, "
                f"{len(written)} NIfTI predictions + volumes.csv")

    def render(self) -> str:
        pixmap = self.window.grab()
        if pixmap.isNull() or pixmap.width() < 100:
            raise SelfTestFailed("the window did not render")
        return f"{pixmap.width()}x{pixmap.height()} px"

    def close(self) -> None:
        """Stop whatever still runs (after a failure) and close the window without questions."""
        w = self.window
        if w is None:
            return
        w.train_panel.stop()
        stopped = all([w.train_panel.wait(), w.data_panel.wait(), w.review_panel.wait()])
        self.app.processEvents()  # the workers' finished slots: the window no longer sees a run
        if not stopped or w.train_panel.running:
            print("FAIL  a worker thread did not stop; exiting without cleaning up", flush=True)
            os._exit(1)
        w.close()
        w.deleteLater()
        self.app.processEvents()
