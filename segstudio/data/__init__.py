"""Datasets: listing, pairing, checking and caching image/mask datasets; the files themselves are
read by segstudio.io (no Qt, no fastai).

The names below load their module on first use, so importing one light piece does not pull in
pydicom and the whole data layer.
"""

from importlib import import_module

_SOURCES = {
    "SegDataset": "items", "VolumeRef": "items", "inspect_dataset": "dataset",
    "load_dataset": "dataset", "list_image_files": "discovery",
    "ClassInfo": "report", "DatasetReport": "report", "Problem": "report", "sample_dataset": "sample",
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value
    return value
