"""Render resources/segstudio.svg to the PNG sizes desktops use (run after editing the SVG).

Writes resources/hicolor/<n>x<n>/apps/<app id>.png, the freedesktop icon-theme layout, so that
`segstudio --install-desktop-entry`, distro packages and the PyInstaller spec copy them as they are.
Windows (.ico) and macOS (.icns) icons are converted from the 256/512 px PNGs by PyInstaller (Pillow).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

from segstudio.resource_paths import ICON_SIZES, icon_png  # noqa: E402


def main() -> int:
    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ROOT / "resources" / "segstudio.svg"))
    if not renderer.isValid():
        print("resources/segstudio.svg does not render", file=sys.stderr)
        return 1
    for n in ICON_SIZES:
        image = QImage(n, n, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        out = ROOT / "resources" / icon_png(n)
        out.parent.mkdir(parents=True, exist_ok=True)
        image.save(str(out))
        print(out.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
