"""Qt views of the bundled resources: icons and the stylesheet (found by segstudio.resource_paths)."""

from __future__ import annotations

from PySide6.QtGui import QIcon

from segstudio.resource_paths import resource_path


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
