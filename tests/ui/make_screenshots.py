"""Render the three areas to resources/screenshots/{data,train,review}.png (offscreen, real engine).

    QT_QPA_PLATFORM=offscreen python tests/ui/make_screenshots.py [--epochs 8] [--size 128]

Not a test: it runs the LR finder and a short real training on the built-in sample dataset.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from segstudio.config import DEMO_SETTINGS  # noqa: E402


def wait_until(app, cond, timeout=600.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("timed out")
        app.processEvents()
        time.sleep(0.01)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=DEMO_SETTINGS["epochs"])
    ap.add_argument("--size", type=int, default=DEMO_SETTINGS["size"])
    ap.add_argument("--out", default=str(ROOT / "resources" / "screenshots"))
    args = ap.parse_args()

    from PySide6.QtCore import QSettings

    from segstudio.data import sample_dataset
    from segstudio.training.session import TrainingSession
    from segstudio.ui.app import make_app
    from segstudio.ui.main_window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="segstudio-shots-"))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp / "settings"))
    app = make_app([])
    w = MainWindow()
    w.resize(1280, 800)
    w.show()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def shot(tab: int, name: str) -> None:
        w.tabs.setCurrentIndex(tab)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        w.grab().save(str(out / f"{name}.png"), "PNG", 9)
        print(f"{name}.png: {(out / f'{name}.png').stat().st_size // 1024} KB")

    images, masks = sample_dataset(tmp / "sample")
    w.train_panel.settings.update(**{**DEMO_SETTINGS, "size": args.size, "epochs": args.epochs},
                                  pretrained=False, out_dir=str(tmp / "runs"))
    w.data_panel.set_folders(str(images), str(masks), load=True)
    wait_until(app, lambda: w.data_panel.dataset is not None and not w.data_panel.busy and not w.tasks.busy)
    shot(0, "data")

    class ShortSweep(TrainingSession):
        def find_lr(self, config, on_event, dataset=None, num_it=100):
            return super().find_lr(config, on_event, dataset=dataset, num_it=40)

    panel = w.train_panel
    panel.session_factory = ShortSweep
    panel.start("find_lr")
    wait_until(app, lambda: not panel.running)
    panel.session_factory = None
    panel.start("train")
    wait_until(app, lambda: not panel.running)
    wait_until(app, lambda: not w.review_panel.busy)
    shot(1, "train")
    settings = panel.settings  # the Advanced settings (normalisation, deep supervision, run in), open
    settings.advanced.expand(animate=False)
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    settings.grab().save(str(out / "train_advanced.png"), "PNG", 9)
    settings.advanced.collapse(animate=False)
    viewer = w.review_panel.viewer
    wait_until(app, lambda: viewer.frame is not None)  # the slice in HU, decoded by a worker
    viewer.bool_show_truth.setChecked(True)
    viewer.slider_opacity.setValue(60)
    shot(2, "review")
    rp = w.review_panel  # correcting: a stroke of the brush, the prediction's outline over the labels
    wait_until(app, lambda: rp.model.mask is not None)
    rp.tools.button_edit.setChecked(True)
    mask = rp.model.mask
    h, wd = mask.labels.shape[1:]
    rp.model.set_tool("brush", radius=max(2, wd // 60), label=1)
    rp.model.press(h * 0.7, wd * 0.3)
    for t in np.linspace(0, 1, 12):
        rp.model.drag(h * (0.7 + 0.1 * np.sin(6 * t)), wd * (0.3 + 0.4 * t))
    rp.model.release()
    viewer.bool_show_truth.setChecked(False)
    shot(2, "review_correct")
    rp.tools.button_edit.setChecked(False)
    viewer.bool_uncertainty.setChecked(True)
    shot(2, "review_uncertainty")
    viewer.bool_uncertainty.setChecked(False)
    rp.model.discard()

    w.open_volume_sample()  # the sample of 3-D scans, with its demo settings
    w.train_panel.settings.update(pretrained=False, out_dir=str(tmp / "runs"))
    wait_until(app, lambda: w.state.dataset is not None and w.state.dataset.volumetric
               and not w.data_panel.busy and not w.tasks.busy)
    shot(0, "data_scans")
    panel.start("train")
    wait_until(app, lambda: not panel.running)
    wait_until(app, lambda: w.review_panel.items and w.review_panel.items[0].is_scan and not w.review_panel.busy)
    scans = w.review_panel.scan_viewer  # the three planes, loaded at full resolution in a worker
    wait_until(app, lambda: scans.data is not None and not w.review_panel.scan_runner.busy)
    scans.combo_overlay.setCurrentIndex(scans.combo_overlay.findData("compare"))
    shot(2, "review_scans")
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
