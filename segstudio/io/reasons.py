"""One-line reasons for the DataErrors of the readers: third-party exceptions shortened, and
without paths (a report names the file once, beside the reason)."""

from __future__ import annotations

from pathlib import Path

GZIP_REASON = "truncated or corrupt gzip data"


def first_line(exc: BaseException, limit: int = 120) -> str:
    """An exception as one short line; for pydicom's "all plugins failed:" lists, the first
    plugin's complaint."""
    lines = [s.strip() for s in str(exc).splitlines() if s.strip()] or [type(exc).__name__]
    line = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    return line if len(line) <= limit else line[:limit - 3] + "..."


def no_path(exc: BaseException, path: Path) -> str:
    """The exception's first line without the file's path or name."""
    return first_line(exc).replace(str(path), "the file").replace(path.name, "the file")
