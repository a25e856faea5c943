"""How unsure the model is: per-pixel entropy of the class probabilities averaged over the image
and its mirror image (a two-member test-time ensemble), scaled to 0..1 by log(classes)."""

from __future__ import annotations

import math

import numpy as np
import torch


def with_flip(probabilities, x: torch.Tensor) -> torch.Tensor:
    """The mean of `probabilities(x)` and of the mirrored image's, mirrored back: (N, K, H, W)."""
    return (probabilities(x) + probabilities(torch.flip(x, dims=[-1])).flip(dims=[-1])) / 2


def with_temperature(probs: torch.Tensor | np.ndarray, temperature: float) -> torch.Tensor | np.ndarray:
    """(..., K, H, W) class probabilities softened (T > 1) or sharpened (T < 1) by a calibration
    temperature: softmax(log p / T) over the classes, of the same kind (tensor or array); the most
    likely class of every pixel stays the same."""
    if temperature == 1:
        return probs
    p = torch.as_tensor(probs).float()
    out = torch.softmax(torch.log(p.clamp_min(1e-12)) / temperature, dim=-3)
    return out if isinstance(probs, torch.Tensor) else out.cpu().numpy()


def entropy_map(probs: torch.Tensor | np.ndarray) -> np.ndarray:
    """(..., K, H, W) probabilities -> (..., H, W) float32 entropy in 0..1 (1: all classes equal)."""
    p = torch.as_tensor(probs).float()
    k = p.shape[-3]
    h = -(p * torch.log(p.clamp_min(1e-8))).sum(dim=-3) / math.log(max(k, 2))
    return h.clamp_(0, 1).cpu().numpy()


def score(entropy: np.ndarray) -> float:
    """One image's (H, W) entropy map -> the mean entropy of its pixels (a batch: score each)."""
    entropy = np.asarray(entropy)
    if entropy.ndim != 2:
        raise ValueError(f"score takes one (H, W) entropy map, not {entropy.shape}")
    return float(np.mean(entropy)) if entropy.size else float("nan")


def to_uint8(entropy: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(entropy) * 255 + 0.5, 0, 255).astype(np.uint8)
