"""Calibration: ECE and reliability-diagram data by hand, and temperature scaling on synthetic
models whose miscalibration is known."""

from __future__ import annotations

import numpy as np
import pytest

from segstudio.evaluation.calibration import (apply_temperature, expected_calibration_error, fit_temperature,
                                              reliability_diagram)


def _calibrated(n=20000, classes=3, seed=0):
    """(logits, labels) where labels are drawn from softmax(logits): calibrated by construction."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, classes))
    p = apply_temperature(logits, 1.0).astype(np.float64)
    u = rng.random((n, 1))
    labels = (u > np.cumsum(p, axis=1)).sum(axis=1)
    return logits, np.minimum(labels, classes - 1)


def test_reliability_diagram_by_hand():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.3, 0.7], [0.4, 0.6], [0.5, 0.5], [0.0, 1.0]])
    labels = np.array([0, 1, 1, 1, 0, 1])
    d = reliability_diagram(probs, labels, bins=5)  # bins (0, .2], (.2, .4], ..., (.8, 1]
    np.testing.assert_array_equal(d.counts, [0, 0, 2, 1, 3])
    np.testing.assert_allclose(d.confidence[2:], [(0.6 + 0.5) / 2, 0.7, (0.95 + 0.9 + 1.0) / 3])
    np.testing.assert_allclose(d.accuracy[2:], [1.0, 1.0, 2 / 3])   # the 0.5/0.5 tie goes to class 0
    assert np.isnan(d.accuracy[0]) and np.isnan(d.confidence[1])
    gaps = 2 * abs(1.0 - 0.55) + abs(1.0 - 0.7) + 3 * abs(2 / 3 - 0.95)
    assert expected_calibration_error(probs, labels, bins=5) == pytest.approx(gaps / 6)
    assert d.ece == pytest.approx(gaps / 6)


@pytest.mark.parametrize("sharpness, direction", [(3.0, "softer"), (0.4, "sharper")])
def test_temperature_undoes_known_miscalibration(sharpness, direction):
    """Logits scaled by `sharpness` after drawing the labels: over-confident (3x) needs T near 3,
    under-confident (0.4x) T near 0.4; either way the ECE drops and no prediction changes."""
    logits, labels = _calibrated()
    scaled = logits * sharpness
    before = expected_calibration_error(apply_temperature(scaled, 1.0), labels)
    t = fit_temperature(scaled, labels)
    assert (t > 1) if direction == "softer" else (t < 1)
    assert t == pytest.approx(sharpness, rel=0.1)
    after_probs = apply_temperature(scaled, t)
    after = expected_calibration_error(after_probs, labels)
    assert before > 0.05 and after < before / 3
    np.testing.assert_array_equal(after_probs.argmax(1), scaled.argmax(1))
    np.testing.assert_allclose(after_probs.sum(1), 1.0, rtol=1e-5)


def test_calibrated_model_keeps_temperature_near_one():
    logits, labels = _calibrated(seed=1)
    assert fit_temperature(logits, labels) == pytest.approx(1.0, abs=0.06)
    assert expected_calibration_error(apply_temperature(logits, 1.0), labels) < 0.02


def test_segmentation_shapes_probabilities_and_ignored_pixels():
    """(N, C, H, W) scores and (N, H, W) labels; probabilities give the temperature of their
    logits; pixels labelled `ignore_index` count nowhere."""
    logits, labels = _calibrated(n=4 * 30 * 40)
    scores = (logits * 2.5).reshape(4, 30, 40, 3).transpose(0, 3, 1, 2)
    y = labels.reshape(4, 30, 40)
    t = fit_temperature(scores, y)
    assert t == pytest.approx(fit_temperature(apply_temperature(scores, 1.0), y, probabilities=True), rel=1e-3)
    assert t == pytest.approx(fit_temperature(scores, y, max_samples=2000), rel=0.25)  # a subset
    y_void = y.copy()
    y_void[:, :5] = 255
    d = reliability_diagram(apply_temperature(scores, 1.0), y_void, ignore_index=255)
    assert d.counts.sum() == 4 * 25 * 40
    with pytest.raises(ValueError, match="do not match"):
        fit_temperature(scores, y[:, :, :10])
    with pytest.raises(ValueError, match="class indices"):
        reliability_diagram(apply_temperature(scores, 1.0), y_void)
    with pytest.raises(ValueError, match="positive"):
        apply_temperature(scores, 0.0)
