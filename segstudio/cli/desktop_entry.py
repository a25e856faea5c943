"""Install (or remove) the freedesktop menu entry, icons and AppStream metainfo for this user.

`segstudio --install-desktop-entry` writes them under $XDG_DATA_HOME (default ~/.local/share), with
the entry's Exec pointing at this installation's `segstudio` (a virtual environment's script or the
frozen bundle's executable), so the app starts from the desktop menu like other software.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import SegstudioError
from ..resource_paths import APP_ID, ICON_SIZES, icon_png, resources_dir

_EXEC_RESERVED = set(' \t\n"\'\\><~|&;$*?#()`')


def data_home() -> Path:
    """$XDG_DATA_HOME, or ~/.local/share when it is unset or not absolute (as the XDG spec says)."""
    env = os.environ.get("XDG_DATA_HOME", "")
    return Path(env) if env and os.path.isabs(env) else Path.home() / ".local" / "share"


def launch_command() -> list[str]:
    """The command that starts this installation of segstudio."""
    if getattr(sys, "frozen", False):
        return [os.path.abspath(sys.executable)]
    # No resolve(): a venv's python is a symlink, and the script lives beside the link.
    script = Path(os.path.abspath(sys.executable)).with_name("segstudio.exe" if os.name == "nt" else "segstudio")
    return [str(script)] if script.is_file() else [os.path.abspath(sys.executable), "-m", "segstudio"]


def quote_exec_arg(arg: str) -> str:
    """One argument of a desktop entry's Exec key, quoted as the spec says (% doubled)."""
    arg = arg.replace("%", "%%")
    if not any(ch in _EXEC_RESERVED for ch in arg):
        return arg
    escaped = "".join("\\" + ch if ch in '"`$\\' else ch for ch in arg)
    return f'"{escaped}"'


def escape_string(value: str) -> str:
    """A desktop entry string value: backslash, newline, tab, return and a leading space escaped."""
    value = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return "\\s" + value[1:] if value.startswith(" ") else value


def desktop_entry_text(template: str, command: list[str]) -> str:
    """The template with Exec and TryExec set to `command` (an absolute path, so no PATH is needed).
    Exec is quoted first, then escaped as a string, as the spec orders it."""
    lines = []
    for line in template.splitlines():
        if line.startswith("Exec="):
            line = "Exec=" + escape_string(" ".join(quote_exec_arg(a) for a in command))
        elif line.startswith("TryExec="):
            line = "TryExec=" + escape_string(command[0])
        lines.append(line)
    return "\n".join(lines) + "\n"


def planned_files(target: Path) -> list[Path]:
    """Everything install() writes under `target`."""
    icons = target / "icons"
    return [target / "applications" / f"{APP_ID}.desktop",
            target / "metainfo" / f"{APP_ID}.metainfo.xml",
            icons / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg",
            *(icons / icon_png(n) for n in ICON_SIZES)]


def install(target: Path | None = None, command: list[str] | None = None) -> list[Path]:
    """Write the desktop entry, metainfo and icons under `target` (default: data_home()); returns the paths."""
    target = target or data_home()
    command = command or launch_command()
    res = resources_dir()
    if res is None:
        raise SegstudioError("The resources folder (icons, desktop entry) is missing from this installation.")
    entry, metainfo, svg, *pngs = planned_files(target)
    template = (res / "linux" / f"{APP_ID}.desktop").read_text(encoding="utf-8")
    sources = {metainfo: res / "linux" / metainfo.name, svg: res / "segstudio.svg"}
    sources.update({png: res / icon_png(n) for png, n in zip(pngs, ICON_SIZES)})
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(desktop_entry_text(template, command), encoding="utf-8")
    for dest, source in sources.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
    _refresh_icon_cache(target)
    return [entry, *sources]


def uninstall(target: Path | None = None) -> list[Path]:
    """Remove what install() wrote (resources not needed); returns the paths that were there."""
    target = target or data_home()
    removed = [p for p in planned_files(target) if p.is_file()]
    for path in removed:
        path.unlink()
    _refresh_icon_cache(target)
    return removed


def _refresh_icon_cache(target: Path) -> None:
    """Update the user's hicolor icon cache where one exists (a stale cache hides new icons);
    none is created, as xdg-utils does not create one either."""
    hicolor = target / "icons" / "hicolor"
    exe = shutil.which("gtk-update-icon-cache")
    if exe and (hicolor / "icon-theme.cache").is_file():
        subprocess.run([exe, "-q", "-t", "-f", str(hicolor)], check=False, capture_output=True)
