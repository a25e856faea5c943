"""Inference: load a run's exported model and predict masks at the images' original size.

Names load their module on first use, so predicting with an exported ONNX model (predictor,
export) never imports fastai, which the review's scoring (review) does."""

from importlib import import_module

_SOURCES = {"Predictor": "predictor", "PredictReport": "predictor", "ReviewItem": "review",
            "predicted_items": "review", "review_items": "review"}
__all__ = sorted(_SOURCES)


def __getattr__(name: str):
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_SOURCES[name]}", __name__), name)
    globals()[name] = value
    return value
