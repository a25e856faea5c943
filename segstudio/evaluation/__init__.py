"""Scoring segmentations against ground truth (no Qt, no training): per-class Dice, NSD, HD95 and
ASSD in millimetres (surface.py), folders of predictions (evaluate.py), probability calibration
(calibration.py).

The names below load their module on first use, so importing one light piece (the metrics) does
not pull in the readers of every format.
"""

from importlib import import_module

_SOURCES = {
    "ClassMetrics": "surface", "SurfaceDistances": "surface", "binary_metrics": "surface",
    "label_metrics": "surface", "surface_distances": "surface",
    "EvaluationReport": "evaluate", "MetricRow": "evaluate", "evaluate_folders": "evaluate",
    "expected_calibration_error": "calibration", "reliability_diagram": "calibration",
    "fit_temperature": "calibration", "apply_temperature": "calibration",
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value
    return value
