"""Open time and slice-step / crosshair latency of the three-plane scan viewer (a script, not a
pytest test).

Builds a 512 x 512 x 300 CT-like int16 scan (0.7 x 0.7 x 2.5 mm) with a 3-class label, keeps it
in a memory-mapped .npy file, opens it in the viewer offscreen (1500 x 600 px), then steps each
plane through slices and drags the crosshair through the axial plane. After every step or
crosshair move the planes that changed are repainted synchronously (whole), so a sample is the
whole path: the state change, the slice views read from the memory map, windowing, the overlay
and the frame drawn. Targets: open <= 3 s, slice step and crosshair p99 <= 30 ms each.

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/viewer_latency.py [--slices 300] [--steps 60]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402


def ct_scan(z: int, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(Z, Y, X) int16 HU (air, fat, a body, a liver, a kidney, a spine) and uint8 labels 0..3."""
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.ogrid[:z, :side, :side]
    c = side / 2
    body = ((yy - c) / (0.42 * side)) ** 2 + ((xx - c) / (0.46 * side)) ** 2 <= 1
    liver = ((yy - 0.45 * side) / (0.16 * side)) ** 2 + ((xx - 0.35 * side) / (0.14 * side)) ** 2 \
        + ((zz - 0.5 * z) / (0.3 * z)) ** 2 <= 1
    kidney = ((yy - 0.62 * side) / (0.06 * side)) ** 2 + ((xx - 0.68 * side) / (0.04 * side)) ** 2 \
        + ((zz - 0.45 * z) / (0.12 * z)) ** 2 <= 1
    spine = ((yy - 0.72 * side) / (0.05 * side)) ** 2 + ((xx - c) / (0.05 * side)) ** 2 <= 1
    hu = np.full((z, side, side), -1000, np.int16)
    hu[np.broadcast_to(body, hu.shape)] = -90
    hu[np.broadcast_to(((yy - c) / (0.38 * side)) ** 2 + ((xx - c) / (0.42 * side)) ** 2 <= 1, hu.shape)] = 40
    hu[liver], hu[kidney], hu[np.broadcast_to(spine, hu.shape)] = 60, 150, 700
    hu += rng.integers(-15, 16, size=hu.shape, dtype=np.int16)
    labels = np.zeros(hu.shape, np.uint8)
    labels[liver], labels[kidney], labels[np.broadcast_to(spine, hu.shape)] = 1, 2, 3
    return hu, labels


def p99(ms: list[float]) -> float:
    return float(np.percentile(ms, 99))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--steps", type=int, default=60, help="slice steps per plane")
    ap.add_argument("--moves", type=int, default=120, help="crosshair moves")
    args = ap.parse_args()

    from PySide6.QtWidgets import QApplication

    from segstudio.editing.scan_loading import ScanData
    from segstudio.editing.viewer_state import ScanGeometry
    from segstudio.ui.panels.scan_viewer import ScanViewer

    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        pid = os.fork()  # built in a child: the peak memory below is the viewer's alone
        if pid == 0:
            hu, labels = ct_scan(args.slices, args.side)
            np.save(Path(tmp) / "scan.npy", hu)
            np.save(Path(tmp) / "labels.npy", labels)
            os._exit(0)
        os.waitpid(pid, 0)
        scan_mb = args.slices * args.side * args.side * 2 / 1e6
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        values = np.load(Path(tmp) / "scan.npy", mmap_mode="r")  # slices are views of the file
        truth = np.load(Path(tmp) / "labels.npy", mmap_mode="r")
        pred = np.where(truth == 2, 1, truth).astype(np.uint8)  # a model that calls the kidney liver
        geometry = ScanGeometry.canonical(values.shape, (2.5, 0.7, 0.7))
        data = ScanData.from_arrays("ct", values, geometry, truth, pred, ("background", "liver", "kidney", "spine"),
                                    unit="HU")
        viewer = ScanViewer()
        viewer.resize(1500, 600)
        viewer.set_data(data)
        viewer.show()
        app.processEvents()
        viewer.repaint()
        open_s = time.perf_counter() - t0
        viewer.state.cursor.set_overlay("compare")
        app.processEvents()

        step_ms = []
        for plane in viewer.planes:
            for k in range(args.steps):
                t = time.perf_counter()
                plane.view.step(1 if k < args.steps // 2 else -1)
                plane.graphics.viewport().repaint()  # drawn now, not when Qt gets to it
                step_ms.append((time.perf_counter() - t) * 1000)
        axial = viewer.planes[0]
        cross_ms = []
        for k in range(args.moves):  # a drag across the axial plane: coronal and sagittal follow
            a = k / max(args.moves - 1, 1)
            t = time.perf_counter()
            axial.view.click(args.side * (0.2 + 0.6 * a), args.side * (0.8 - 0.6 * a))
            for plane in viewer.planes:  # the crosshair moved in all three
                plane.graphics.viewport().repaint()
            cross_ms.append((time.perf_counter() - t) * 1000)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"scan {args.side} x {args.side} x {args.slices} int16: {scan_mb:.0f} MB (memory-mapped); "
              f"peak RSS {rss:.0f} MB ({rss_before:.0f} MB before opening: Python, Qt, torch)")
        print(f"slice step: median {np.median(step_ms):.1f} ms, p99 {p99(step_ms):.1f} ms over {len(step_ms)}; "
              f"crosshair: median {np.median(cross_ms):.1f} ms, p99 {p99(cross_ms):.1f} ms over {len(cross_ms)}")
        viewer.close()
        del viewer, data, values, truth
        print(f"viewer: open {open_s:.2f} s; slice step p99 {p99(step_ms):.0f} ms; "
              f"crosshair p99 {p99(cross_ms):.0f} ms; planes 3")
    return 0


if __name__ == "__main__":
    sys.exit(main())
