"""Inference: load a run's exported model and predict masks at the images' original size."""

from .predictor import PredictReport, Predictor
from .review import ReviewItem, predicted_items, review_items

__all__ = ["Predictor", "PredictReport", "ReviewItem", "predicted_items", "review_items"]
