"""Image formats: one reader registry (registry.py) over a module per format (raster, DICOM file,
DICOM series, DICOM SEG, NIfTI, ITK), and one image type, the Volume (no Qt, no torch).

The names below load their module on first use, so importing one light piece does not pull in
pydicom, nibabel and SimpleITK.
"""

from importlib import import_module

_SOURCES = {
    "Volume": "volume", "reader_for": "registry", "read_image": "registry", "read_scan": "registry",
    "read_geometry": "registry", "read_channels": "registry", "write_label_like": "registry",
    "is_volume_file": "registry", "volume_files": "registry", "volume_stem": "registry",
    "volume_suffix": "registry", "sniff_format": "sniff", "group_series": "dicom_series",
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value
    return value
