"""A run's report to share (no Qt): what its folder holds (run_report.py), its validation cases
predicted and scored (validation.py), pictures (figures.py) and one self-contained HTML page
(html.py).

The names below load their module on first use (the validation pulls in torch).
"""

from importlib import import_module

_SOURCES = {
    "RunReport": "run_report", "gather": "run_report", "write_run_report": "html",
    "ValidationScores": "validation", "score_validation": "validation", "write_validation": "validation",
    "render": "html",
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value
    return value
