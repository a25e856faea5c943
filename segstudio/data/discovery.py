"""Finding image files in a folder and telling their format from their first bytes."""

from __future__ import annotations

from pathlib import Path

RASTER_EXTS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
DICOM_EXTS = {".dcm", ".dicom"}
IMAGE_EXTS = RASTER_EXTS | DICOM_EXTS
SKIP_NAMES = {"dicomdir"}
# files segstudio reads or writes beside the images, not worth a note when skipped
SIDECAR_NAMES = {"classes.txt", "codes.txt", "dataset.json", ".segstudio-predictions.json"}


def looks_dicom(fmt: str, path: Path) -> bool:
    """DICOM by its preamble, or a file of no known format without a raster extension (DICOM
    without a preamble, e.g. extensionless scanner exports); `fmt` is `sniff_format(path)`."""
    return fmt == "DICOM" or (not fmt and path.suffix.lower() not in RASTER_EXTS)

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)


def sniff_format(path: Path) -> str:
    """The file's format from its content: "DICOM", "PNG", "JPEG", "TIFF", "BMP", "EMPTY" or ""."""
    with open(path, "rb") as f:
        head = f.read(132)
    if not head:
        return "EMPTY"
    if head[128:132] == b"DICM":
        return "DICOM"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return ""


def is_supported(path: Path) -> bool:
    """A visible file with a supported extension, or any other file with the DICOM preamble."""
    if path.name.startswith(".") or path.name.lower() in SKIP_NAMES or not path.is_file():
        return False
    if path.suffix.lower() in IMAGE_EXTS:
        return True
    try:  # DICOM files are often named by UID or number ("1.2.840...", "IM0001")
        return sniff_format(path) == "DICOM"
    except OSError:
        return False


def list_image_files(folder: str | Path) -> list[Path]:
    """Supported image files directly in `folder` (not recursive), sorted by name."""
    return sorted((p for p in Path(folder).iterdir() if is_supported(p)), key=lambda p: p.name)


def skipped_entries(folder: str | Path, listed: list[Path]) -> tuple[list[Path], list[Path]]:
    """(visible files not in `listed`, visible subfolders) of `folder`, sorted by name."""
    taken = set(listed)
    files, folders = [], []
    try:
        entries = sorted(Path(folder).iterdir(), key=lambda p: p.name)
    except OSError:
        return [], []
    for p in entries:
        if p.name.startswith(".") or p in taken or p.name.lower() in SKIP_NAMES | SIDECAR_NAMES:
            continue
        if p.is_dir():
            folders.append(p)
        elif p.is_file():
            files.append(p)
    return files, folders
