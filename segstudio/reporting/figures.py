"""The report's pictures as PNG bytes, drawn with matplotlib's Agg canvas (no pyplot, no
display): learning curves, a case's overlays and the reliability diagram."""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..evaluation.calibration import ReliabilityDiagram
from ..palette import COMPARE, class_colours, compare_map, compare_colours
from .validation import Calibration, CaseView

DPI = 110
OVERLAY_ALPHA = 0.6
COLUMNS = ("Image", "Ground truth", "Prediction", "Compare")
PANEL = 2.4      # inches: a picture's width
MAX_RATIO = 3.0  # a plane's height over its width, at most (taller ones are shown narrower)


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def learning_curves(rows: list[dict], codes: list[str], best_epoch: int | None = None) -> bytes:
    """Training and validation loss, and validation Dice per class (and their mean), per epoch
    (metrics.json's rows); `best_epoch` (1-based) marked."""
    fig = Figure(figsize=(10, 3.8))
    loss_ax, dice_ax = fig.subplots(1, 2)
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    marker = "o" if len(rows) <= 30 else None
    for key, label in (("train_loss", "training"), ("valid_loss", "validation")):
        loss_ax.plot(epochs, [_value(r, key) for r in rows], marker=marker, label=label)
    loss_ax.set(title="Loss", xlabel="epoch")
    colours = class_colours(len(codes)) / 255
    for c, name in enumerate(codes[1:], start=1):
        dice_ax.plot(epochs, [_value(r, f"dice_{name}") for r in rows], marker=marker, color=colours[c], label=name)
    dice_ax.plot(epochs, [_value(r, "dice_mean") for r in rows], color="black", linestyle="--", label="mean")
    dice_ax.set(title="Validation Dice", xlabel="epoch", ylim=(0, 1.02))
    for ax in (loss_ax, dice_ax):
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linewidth=0.8, linestyle=":")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, frameon=False)
        if len(epochs) < 12:
            ax.set_xticks(epochs)
    if best_epoch:
        dice_ax.annotate(f"best model (epoch {best_epoch})", (best_epoch, 0.03), fontsize=8, color="grey",
                         ha="right" if best_epoch > (max(epochs) + min(epochs)) / 2 else "left")
    fig.tight_layout()
    return png(fig)


def case_figure(view: CaseView, codes: list[str]) -> bytes:
    """One row per plane: the image, the truth and the prediction over it in the class colours,
    and the compare map (correct, false positive, missed, wrong class) over it."""
    rows = len(view.planes)
    ratios = [min(p.image.shape[0] * p.aspect / p.image.shape[1], MAX_RATIO) for p in view.planes]
    fig = Figure(figsize=(4 * PANEL, PANEL * sum(ratios) + 0.3 * rows + 0.6), layout="compressed")
    axes = np.asarray(fig.subplots(rows, 4, squeeze=False, gridspec_kw={"height_ratios": ratios}))
    colours = class_colours(len(codes))
    for r, plane in enumerate(view.planes):
        grey = plane.image.ndim == 2
        layers = (None, _overlay(plane.truth, colours), _overlay(plane.pred, colours),
                  _overlay(compare_map(plane.truth, plane.pred), compare_colours()))
        for c, layer in enumerate(layers):
            ax = axes[r, c]
            ax.imshow(plane.image, cmap="gray" if grey else None, vmin=0, vmax=255, aspect=plane.aspect,
                      interpolation="nearest")
            if layer is not None:
                ax.imshow(layer, aspect=plane.aspect, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(COLUMNS[c], fontsize=10)
        if plane.title:
            axes[r, 0].set_ylabel(plane.title, fontsize=10)
    handles = [Patch(color=colours[i] / 255, label=name) for i, name in enumerate(codes) if i > 0]
    handles += [Patch(color=np.asarray(colour) / 255, label=name) for name, colour in COMPARE.values()]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    return png(fig)


def reliability_figure(calibration: Calibration) -> bytes:
    """Accuracy against confidence per bin, as predicted and with the fitted temperature."""
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    panels = ((calibration.before, "As predicted"),
              (calibration.after, f"With temperature T = {calibration.temperature:.2f}"))
    for ax, (diagram, title) in zip(axes, panels):
        _reliability(ax, diagram)
        ax.set_title(f"{title}: ECE {diagram.ece:.4f}", fontsize=10)
    fig.tight_layout()
    return png(fig)


def _reliability(ax, d: ReliabilityDiagram) -> None:
    width = float(d.edges[1] - d.edges[0])
    centres = (d.edges[:-1] + d.edges[1:]) / 2
    used = d.counts > 0
    ax.bar(centres[used], d.accuracy[used], width=width * 0.95, color="#5b8def", edgecolor="#2b5cbf",
           label="accuracy")
    gap_lo = np.minimum(d.accuracy, d.confidence)[used]
    ax.bar(centres[used], np.abs(d.accuracy - d.confidence)[used], bottom=gap_lo, width=width * 0.95,
           color=(0.91, 0.3, 0.24, 0.25), edgecolor="#c0392b", hatch="///", linewidth=0.8, label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=0.8, label="perfectly calibrated")
    share = d.counts / max(int(d.counts.sum()), 1)
    for x, s, a in zip(centres[used], share[used], d.accuracy[used]):  # the share of samples in each bin
        ax.text(x, 0.02, f"{s:.0%}" if s >= 0.01 else "<1%", rotation=90, fontsize=6, ha="center",
                va="bottom", color="white" if a > 0.2 else "black")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (largest class probability)", ylabel="accuracy")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)


def _overlay(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(H, W, 4) RGBA: `lut` colours where labels > 0 at OVERLAY_ALPHA, clear elsewhere."""
    rgba = np.zeros((*labels.shape, 4), np.float32)
    index = np.clip(labels, 0, len(lut) - 1)
    rgba[..., :3] = lut[index] / 255
    rgba[..., 3] = np.where(labels > 0, OVERLAY_ALPHA, 0.0)
    return rgba


def _value(row: dict, key: str) -> float:
    value = row.get(key)
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan
