"""Find bundled resources (icons, stylesheet) from a checkout, an installed wheel or a frozen app."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon

import segstudio


def _candidates() -> list[Path]:
    pkg = Path(segstudio.__file__).resolve().parent
    out = [pkg.parent / "resources", pkg / "resources"]
    meipass = getattr(sys, "_MEIPASS", None)
    if meipass:
        out.append(Path(meipass) / "resources")
    return out


@lru_cache(maxsize=1)
def resources_dir() -> Path | None:
    """The first resources/ folder that holds the stylesheet, or None when none is found."""
    for cand in _candidates():
        if (cand / "style.qss").is_file():
            return cand
    return None


def resource_path(name: str) -> Path | None:
    root = resources_dir()
    if root is None:
        return None
    path = root / name
    return path if path.exists() else None


def icon(name: str) -> QIcon:
    """An icon from resources/icons/<name>.svg (an empty icon when missing, never an error)."""
    path = resource_path(f"icons/{name}.svg")
    return QIcon(str(path)) if path else QIcon()


def app_icon() -> QIcon:
    path = resource_path("segstudio.svg")
    return QIcon(str(path)) if path else QIcon()


def stylesheet() -> str:
    path = resource_path("style.qss")
    if path is None:
        return ""
    text = path.read_text(encoding="utf-8")
    # url(icons/x.svg) in the qss is relative to resources/; Qt needs absolute paths.
    return text.replace("url(icons/", f"url({path.parent.as_posix()}/icons/")
