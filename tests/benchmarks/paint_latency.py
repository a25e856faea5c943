"""Event-to-paint latency of a brush stroke in the review viewer (a script, not a pytest test).

A 512 x 512 image with its mask loaded for correcting; strokes of mouse events are sent to the
viewer's viewport, and after each event the view is repainted synchronously, so one sample is the
whole path: the event, the model's paint, the overlay update, and the frame drawn. Releases also
include the undo record and the autosave of the plane. Target: p99 < 30 ms per move event.

    QT_QPA_PLATFORM=offscreen python tests/benchmarks/paint_latency.py [--size 512] [--strokes 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--strokes", type=int, default=30)
    ap.add_argument("--moves", type=int, default=40, help="mouse move events per stroke")
    ap.add_argument("--radius", type=int, default=8)
    args = ap.parse_args()

    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from segstudio.editing.labels import EditableMask
    from segstudio.editing.store import MaskContext
    from segstudio.inference.review import ReviewItem
    from segstudio.ui.panels.review_viewer import ReviewViewer

    app = QApplication.instance() or QApplication([])
    n = args.size
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (n, n), dtype=np.uint8)
    labels = np.zeros((n, n), np.uint8)
    labels[n // 4:n // 2, n // 4:n // 2] = 1
    item = ReviewItem(0, "bench", image, labels, labels.copy(), (), float("nan"), "bench.png", mask_file="")
    tmp = Path(tempfile.mkdtemp(prefix="segstudio-paint-"))
    viewer = ReviewViewer()
    viewer.model.set_items([item], MaskContext(["background", "a", "b"], [0, 1, 2], False, str(tmp / "masks")))
    viewer.model.select(0)
    viewer.model.add_mask(EditableMask("bench.png#0", "bench", image[None], labels[None].copy(), labels[None].copy(),
                                       labels[None].copy(), source="bench.png"))
    viewer.resize(900, 900)
    viewer.show()
    viewer.show_item(item)
    viewer.set_editing(True)
    viewer.model.set_tool("brush", radius=args.radius, label=2)
    for _ in range(10):
        app.processEvents()
    viewer.fit()
    port = viewer.view_review.viewport()
    for _ in range(10):
        app.processEvents()

    def send(kind, x, y):
        p = viewer.viewbox.mapViewToDevice(QPointF(x, y))
        buttons = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else Qt.MouseButton.LeftButton
        t0 = time.perf_counter()
        QApplication.sendEvent(port, QMouseEvent(kind, p, port.mapToGlobal(p), Qt.MouseButton.LeftButton, buttons,
                                                 Qt.KeyboardModifier.NoModifier))
        port.repaint()
        return (time.perf_counter() - t0) * 1000

    moves, releases = [], []
    for s in range(args.strokes):
        y0 = rng.uniform(0.1, 0.9) * n
        xs = np.linspace(0.05 * n, 0.95 * n, args.moves)
        ys = y0 + 0.05 * n * np.sin(np.linspace(0, 6, args.moves) + s)
        send(QEvent.Type.MouseButtonPress, xs[0], ys[0])
        moves += [send(QEvent.Type.MouseMove, x, y) for x, y in zip(xs[1:], ys[1:])]
        releases.append(send(QEvent.Type.MouseButtonRelease, xs[-1], ys[-1]))
    painted = int((viewer.model.mask.labels == 2).sum())
    assert painted > 0 and len(viewer.model.history) == args.strokes, (painted, len(viewer.model.history))

    def stats(ms):
        a = np.asarray(ms)
        return f"p50 {np.percentile(a, 50):6.2f} ms  p99 {np.percentile(a, 99):6.2f} ms  max {a.max():6.2f} ms"

    print(f"{n}x{n} image, brush radius {args.radius}, {args.strokes} strokes of {args.moves} events "
          f"({painted} pixels painted; Qt platform {QApplication.platformName()})")
    print(f"move event -> frame painted:  {stats(moves)}  (n={len(moves)})")
    print(f"release (+undo record, autosave): {stats(releases)}  (n={len(releases)})")
    p99 = float(np.percentile(moves, 99))
    print(f"p99 / 30 ms target = {p99 / 30:.2f}")
    viewer.model.discard()
    return 0


if __name__ == "__main__":
    sys.exit(main())
