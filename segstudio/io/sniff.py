"""A file's format from its first bytes, so that a PNG named .dcm still reads as a PNG."""

from __future__ import annotations

from pathlib import Path

RASTER_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
DICOM_EXTS = {".dcm", ".dicom"}
HEAD_BYTES = 352  # enough for the DICOM preamble (128-132) and the NIfTI-1 magic (344-348)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)


def read_head(path: Path) -> bytes:
    """The first HEAD_BYTES bytes of `path` (fewer for a short file); OSError as open()."""
    with open(path, "rb") as f:
        return f.read(HEAD_BYTES)


def format_of(head: bytes) -> str:
    """The format a file's first bytes say: "DICOM", "PNG", "JPEG", "TIFF", "BMP", "EMPTY" or ""."""
    if not head:
        return "EMPTY"
    if head[128:132] == b"DICM":
        return "DICOM"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return ""


def sniff_format(path: Path) -> str:
    """The file's format from its content (see format_of)."""
    return format_of(read_head(path))


def looks_dicom(fmt: str, path: Path) -> bool:
    """DICOM by its preamble, or a file of no known format without a raster extension (DICOM
    without a preamble, e.g. extensionless scanner exports); `fmt` is `sniff_format(path)`."""
    return fmt == "DICOM" or (not fmt and path.suffix.lower() not in RASTER_EXTS)
