"""Exporting a run's model to ONNX or TorchScript, self-describing and checked against PyTorch
(a fold set's: one graph that averages its folds' probabilities, as the predictor does).

The exported graph takes what the predictor feeds the model before normalising: float32 images
(N, C, S, S) scaled to 0..1 (CT windowed first, a grey image repeated to C channels), and returns
class probabilities (N, K, S, S); normalisation and softmax are inside. Everything else a user
needs (classes, size, window, normalisation statistics, how scans were sliced) is in the file's
metadata as segstudio's model.json, under the key "segstudio" (a run trained on patches: with
the sliding-window settings, "exported" -> "sliding_window"). The file is written only after its
outputs matched PyTorch's on sample inputs, within float32's precision at the model's logit scale.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import SegstudioError
from ..files import atomic_path, check_writable
from ..model.backends import TorchBackend, load_backend
from ..model.onnx import METADATA_KEY, onnx_session, run_onnx
from .sliding_window import MIN_WEIGHT, SIGMA_SCALE, window_step

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# The check's tolerance on probabilities, as a share of the model's largest logit on the samples
# (a fold set: its folds' largest, each over its temperature).
# Float32 rounding grows with the logits (a random-encoder U-Net with instance norm reaches
# |logits| ~800, a BatchNorm one ~70): ONNX Runtime and PyTorch logits were measured to differ by
# at most 1.6e-6 of the largest (both models, against a float64 reference as well), and softmax
# changes by at most half the logits' change. Real export mistakes are far above it: weights
# rounded to float16 8.4e-6..2.8e-5, inputs half a grey level off 3.7e-5..1.3e-4.
RELATIVE_TOLERANCE = 5e-6
TORCHSCRIPT_META = "segstudio.json"
OPSET = 18


@dataclass
class ExportReport:
    path: str
    format: str
    max_abs_diff: float     # largest probability difference from PyTorch on the samples
    tolerance: float        # the largest accepted (RELATIVE_TOLERANCE x logit_scale)
    meta: dict
    logit_scale: float = 0.0     # the model's largest |logit| on the samples
    mask_agreement: float = 1.0  # share of sample pixels whose class (argmax) is the same


def exported_meta(meta: dict) -> dict:
    """model.json plus what the exported graph expects and returns, and how images become its
    inputs: resized whole, or (a run trained on patches, meta["input"]) cut into sliding windows."""
    n_in, size = int(meta["n_in"]), int(meta["size"])
    exported = {
        "input": f"image: float32 (N, {n_in}, {size}, {size}), pixel values / 255 after the window "
                 "(grey images repeated to every channel); normalisation is inside the graph",
        "output": f"probabilities: float32 (N, {len(meta['codes'])}, {size}, {size}), softmax over classes",
        "resize": f"images are resized to {size} x {size} (bilinear) and masks back to the image size"}
    settings = meta.get("input") or {}
    if settings.get("mode") == "patches":
        patch, scale = int(settings.get("patch", size)), float(settings.get("scale", 1.0))
        overlap = float(settings.get("overlap", 0.5))
        exported["resize"] = (
            f"images are scaled by {scale:g} (bilinear; the window applied after scaling), padded with 0 "
            f"on the bottom/right to at least {patch} x {patch}, and predicted in {patch} x {patch} "
            f"windows every {window_step(patch, overlap)} pixels (overlap {overlap:g}, "
            "the last flush with the edge); the windows' probabilities are averaged with Gaussian weights "
            f"(sigma {patch * SIGMA_SCALE:g} px, clipped at {MIN_WEIGHT:g}), the padding cropped and the result "
            "resized back to the image size (bilinear)")
        exported["sliding_window"] = {"patch": patch, "scale": scale, "overlap": overlap,
                                      "weights": "gaussian", "sigma_scale": SIGMA_SCALE, "min_weight": MIN_WEIGHT,
                                      "padding": "zeros, bottom/right"}
    return {**meta, "exported": exported}


def export_model(run_dir: str | Path, fmt: str = "onnx", out: str | Path | None = None,
                 tolerance: float | None = None, samples: np.ndarray | None = None) -> ExportReport:
    """Write the model of the run (or fold set) in `run_dir` as ONNX or TorchScript (default:
    model.onnx / model.pt in `run_dir`; a folder: that name in it) after checking it against PyTorch on `samples`
    ((N, C, S, S) in 0..1; default: a few random and flat images): probabilities within
    `tolerance` (default RELATIVE_TOLERANCE of the largest logit), and the same class on every
    pixel whose two likeliest classes are further apart than that. SegstudioError when the
    check fails, or the destination cannot be written (tried before the model is loaded);
    nothing is written then."""
    if fmt not in FORMATS:
        raise SegstudioError(f"Unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    folder_given = out is not None and str(out).endswith(("/", "\\"))  # "new/": a folder to make
    out = Path(out).expanduser() if out else Path(run_dir) / f"model{FORMATS[fmt]}"
    if out.is_dir() or folder_given:
        out = out / f"model{FORMATS[fmt]}"
    check_writable(out.parent, "folder to export into")
    backend = load_backend(run_dir, device="cpu")
    if not isinstance(backend, TorchBackend):
        raise SegstudioError(f"{run_dir} is an exported model already; export from its run folder")
    meta = exported_meta(backend.meta)
    wrapper = backend.graph()
    n_in, size = int(meta["n_in"]), int(meta["size"])
    x = sample_inputs(n_in, size) if samples is None else torch.as_tensor(samples, dtype=torch.float32)
    with torch.no_grad():
        scale = backend.logit_scale(x)
        expected = wrapper(x).numpy()
    limit = RELATIVE_TOLERANCE * scale if tolerance is None else tolerance
    out.parent.mkdir(parents=True, exist_ok=True)  # checked writable above
    with atomic_path(out, suffix=FORMATS[fmt]) as tmp:
        if fmt == "onnx":
            _write_onnx(wrapper, x, tmp, meta)
            got = run_onnx(onnx_session(tmp, cpu=True), x.numpy())
        else:
            _write_torchscript(wrapper, x, tmp, meta)
            with torch.no_grad():
                got = torch.jit.load(str(tmp), map_location="cpu")(x).numpy()
        diff = float(np.abs(got - expected).max())
        differ = got.argmax(axis=1) != expected.argmax(axis=1)
        top2 = np.sort(expected, axis=1)[:, -2:]
        if not diff <= limit or (differ & (top2[:, 1] - top2[:, 0] > 2 * limit)).any():
            raise SegstudioError(f"The exported {fmt} model differs from PyTorch by up to {diff:.2e} in "
                                 f"probability (tolerance {limit:.1e}) and gives {differ.mean():.2%} of the "
                                 "sample pixels another class; nothing was written")
    return ExportReport(str(out), fmt, diff, limit, meta, scale, float(1 - differ.mean()))


def sample_inputs(n_in: int, size: int) -> torch.Tensor:
    """Four checks: uniform noise, smooth noise, and two flat images (0 and 1)."""
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(1, n_in, size, size, generator=g)
    smooth = torch.nn.functional.interpolate(torch.rand(1, n_in, 8, 8, generator=g), size=(size, size),
                                             mode="bilinear", align_corners=False)
    return torch.cat([noise, smooth, torch.zeros(1, n_in, size, size), torch.ones(1, n_in, size, size)])


def _write_onnx(wrapper: torch.nn.Module, x: torch.Tensor, path: Path, meta: dict) -> None:
    import onnx

    with warnings.catch_warnings():  # the TorchScript-based exporter: torch.export cannot trace
        warnings.simplefilter("ignore")  # DynamicUnet's hooks (measured with torch 2.14)
        torch.onnx.export(wrapper, (x,), str(path), input_names=["image"], output_names=["probabilities"],
                          dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(model, str(path))


def _write_torchscript(wrapper: torch.nn.Module, x: torch.Tensor, path: Path, meta: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, x)
    torch.jit.save(traced, str(path), _extra_files={TORCHSCRIPT_META: json.dumps(meta)})

