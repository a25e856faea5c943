"""Calibration of class probabilities: expected calibration error, reliability-diagram data, and
temperature scaling (one scalar fitted on validation data; Guo et al. 2017, "On Calibration of
Modern Neural Networks").

Conventions: scores are (N, C, ...) with the classes on axis 1 (a batch of images: (N, C, H, W);
a scan: (1, C, Z, Y, X)) or (N, C); labels are (N, ...) class indices. Every pixel (voxel) is
one sample. Calibration here is top-label calibration: the confidence of a sample is its largest
class probability and it is correct when that class is the label; ECE bins the confidences in
`bins` equal-width bins over [0, 1] and is sum_b (n_b / N) |accuracy_b - confidence_b|.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

BINS = 15              # Guo et al.'s choice
T_RANGE = (0.05, 20.0)  # the temperatures searched
MAX_SAMPLES = 2_000_000  # pixels used to fit a temperature (a random subset beyond that)


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per confidence bin: its edges (bins + 1), the mean confidence and the accuracy of the
    samples in it (NaN for an empty bin) and their number."""
    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: the count-weighted mean |accuracy - confidence|."""
        used = self.counts > 0
        gaps = np.abs(self.accuracy[used] - self.confidence[used])
        return float(np.sum(gaps * self.counts[used]) / max(int(self.counts.sum()), 1))


def reliability_diagram(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS,
                        ignore_index: int | None = None) -> ReliabilityDiagram:
    """Top-label reliability of class `probabilities` (N, C, ...) against `labels` (N, ...);
    samples labelled `ignore_index` are left out."""
    p, y = _samples(probabilities, labels, ignore_index)
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, bins + 1)
    # bins are (lo, hi], the first one [0, hi]: a confidence of exactly 1 is in the last bin
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, weights=confidence, minlength=bins) / counts
        accuracy = np.bincount(index, weights=correct, minlength=bins) / counts
    return ReliabilityDiagram(edges, mean_conf, accuracy, counts)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = BINS,
                               ignore_index: int | None = None) -> float:
    """Top-label ECE over `bins` equal-width confidence bins (see the module's conventions)."""
    return reliability_diagram(probabilities, labels, bins, ignore_index).ece


def fit_temperature(scores: np.ndarray, labels: np.ndarray, *, probabilities: bool = False,
                    ignore_index: int | None = None, max_samples: int = MAX_SAMPLES, seed: int = 0) -> float:
    """The temperature T minimising the negative log-likelihood of softmax(logits / T) on
    validation `scores` (logits, or class probabilities with `probabilities=True`, whose logs
    serve as logits) and `labels`. T > 1 softens over-confident probabilities, T < 1 sharpens;
    the most likely class of every sample stays the same. Searched in [0.05, 20]; beyond
    `max_samples` pixels, a random subset of that many is used."""
    z, y = _samples(scores, labels, ignore_index)
    if probabilities:
        z = np.log(np.clip(z, 1e-12, None))
    if len(y) > max_samples:
        keep = np.random.default_rng(seed).choice(len(y), max_samples, replace=False)
        z, y = z[keep], y[keep]
    if not len(y):
        raise ValueError("no labelled samples to fit a temperature on")
    z = z.astype(np.float64)
    true = z[np.arange(len(y)), y]

    def nll(log_t: float) -> float:  # convex in 1/T, so one minimum along log T
        beta = np.exp(-log_t)
        return float(np.mean(logsumexp(beta * z, axis=1) - beta * true))

    lo, hi = np.log(T_RANGE)
    result = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def apply_temperature(scores: np.ndarray, temperature: float, *, probabilities: bool = False,
                      axis: int = 1) -> np.ndarray:
    """softmax(logits / T) along the class `axis` (logits: `scores`, or the logs of class
    probabilities with `probabilities=True`), as float32."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = np.asarray(scores, dtype=np.float32)
    if probabilities:
        z = np.log(np.clip(z, 1e-12, None))
    return np.exp(log_softmax(z / np.float32(temperature), axis=axis)).astype(np.float32)


def _samples(scores: np.ndarray, labels: np.ndarray, ignore_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(samples, C) scores and (samples,) labels from (N, C, ...) and (N, ...)."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.ndim < 2 or labels.shape != scores.shape[:1] + scores.shape[2:]:
        raise ValueError(f"scores (N, C, ...) and labels (N, ...) do not match: {scores.shape} and {labels.shape}")
    flat = np.moveaxis(scores, 1, -1).reshape(-1, scores.shape[1])
    y = labels.reshape(-1).astype(np.int64)
    if ignore_index is not None:
        keep = y != ignore_index
        flat, y = flat[keep], y[keep]
    if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
        raise ValueError(f"labels must be class indices 0..{scores.shape[1] - 1}")
    return flat, y
