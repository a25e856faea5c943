"""Where the bundled resources (icons, stylesheet, desktop entry) are: one lookup for every layout,
and the app id their files are named after (the desktop entry, the metainfo, the hicolor icons).

- checkout (and editable install): ``<repo>/segstudio/`` next to ``<repo>/resources/``;
- installed wheel: ``site-packages/segstudio/resources/`` (pyproject maps ``resources/`` there);
- frozen bundle: ``<bundle>/_internal/segstudio/resources/`` (the PyInstaller spec puts it there).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import segstudio

APP_ID = "io.github.segstudio.segstudio"  # the desktop entry's name, Wayland's app id, macOS's bundle id
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)  # the PNG icons in resources/hicolor (packaging/make_icons.py)
MARKER = "style.qss"  # a file every resources/ folder holds
# What an install ships of resources/ (pyproject's package-data, the PyInstaller spec); not screenshots.
SHIPPED = ("style.qss", "segstudio.svg", "icons", "hicolor", "linux")


def icon_png(n: int) -> Path:
    """The n px icon, relative to an icons folder (resources/, or $XDG_DATA_HOME/icons): hicolor layout."""
    return Path("hicolor") / f"{n}x{n}" / "apps" / f"{APP_ID}.png"


def find_resources(package_dir: Path) -> Path | None:
    """The resources/ folder for a segstudio package at `package_dir`, or None when there is none."""
    for candidate in (package_dir / "resources", package_dir.parent / "resources"):
        if (candidate / MARKER).is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def resources_dir() -> Path | None:
    """This installation's resources/ folder (None when it is missing: the app runs without it)."""
    return find_resources(Path(segstudio.__file__).resolve().parent)


def resource_path(name: str) -> Path | None:
    """resources/<name>, or None when it does not exist."""
    root = resources_dir()
    return root / name if root is not None and (root / name).exists() else None
