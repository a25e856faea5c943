"""Backends: a trained model behind one call, `probabilities(x)`, whoever runs it: PyTorch for a
run folder (TorchBackend) or a fold set (FoldSetBackend, the folds' probabilities averaged), or
onnxruntime for a file `segstudio export` wrote (OnnxBackend, without fastai). The predictor
holds one; the export writes a TorchBackend's graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from ..data.folds import is_fold_set
from ..errors import SegstudioError
from ..preprocess.plan import Plan
from ..runs import MODEL_FILE, MODEL_META
from .device import resolve_device
from .ensemble import FoldEnsemble, ensemble_meta, fold_runs
from .onnx import onnx_session, read_onnx_meta, run_onnx
from .unet import build_unet


class Backend(Protocol):
    """What the predictor needs of a model; test doubles implement it."""

    name: str               # "torch" or "onnx"
    meta: dict              # the model.json (Plan.from_meta reads the plan from it)
    device: torch.device    # where probabilities() takes its inputs and leaves its result
    run_dir: Path | None    # the run folder it was trained in (a fold set: its first fold's); None: unknown

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """float32 (N, C, S, S) in 0..1 (windowed, grey repeated to C) -> (N, K, S, S) softmax probabilities."""


class Probabilities(nn.Module):
    """The model with its input normalisation before it and softmax after it: what the export writes."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model((image - self.mean) / self.std), dim=1)


class TorchBackend:
    """A PyTorch model (normalised inputs -> logits) and its model.json."""

    name = "torch"

    def __init__(self, model: nn.Module, meta: dict, device: torch.device, run_dir: Path | None = None):
        self.model = model.eval().to(device)
        self.meta, self.device, self.run_dir = meta, device, run_dir
        self._mean = torch.tensor(meta["mean"], dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self._std = torch.tensor(meta["std"], dtype=torch.float32, device=device).view(1, -1, 1, 1)

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto") -> "TorchBackend":
        """The model of the run in `run_dir` (model.json + model.pth, weights only: no pickle);
        SegstudioError if it has none."""
        run_dir = Path(run_dir)
        if not (run_dir / MODEL_FILE).is_file() or not (run_dir / MODEL_META).is_file():
            raise SegstudioError(f"{run_dir} holds no trained model ({MODEL_FILE} + {MODEL_META}); "
                                 "a run saves one after its first finished epoch.")
        meta = json.loads((run_dir / MODEL_META).read_text(encoding="utf-8"))
        model = build_unet(Plan.from_meta(meta))
        model.load_state_dict(torch.load(run_dir / MODEL_FILE, map_location="cpu", weights_only=True))
        return cls(model, meta, resolve_device(device)[0], run_dir)

    @torch.no_grad()
    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        # bf16 autocast on CUDA, as training uses there (not yet measured on a GPU in this project);
        # the softmax is taken in float32
        cuda = self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and torch.cuda.is_bf16_supported()):
            logits = self.model((x - self._mean) / self._std)
        return torch.softmax(torch.as_tensor(logits).float(), dim=1)

    def graph(self) -> Probabilities:
        """The model in float32 with normalisation and softmax inside: inputs in 0..1 ->
        probabilities, the graph the export writes."""
        return Probabilities(self.model.float(), self.meta["mean"], self.meta["std"]).eval()

    @torch.no_grad()
    def logit_scale(self, x: torch.Tensor) -> float:
        """The largest |logit| on inputs `x` (0..1): float32 rounding in another runtime grows with it."""
        return float(self.model((x - self._mean) / self._std).abs().max())


class FoldSetBackend(TorchBackend):
    """A fold set's folds as one model (ensemble.FoldEnsemble): inputs in 0..1, the folds'
    probabilities averaged, each fold with its own normalisation and temperature."""

    @classmethod
    def load(cls, root: str | Path, device: str = "auto", allow_missing_folds: bool = False) -> "FoldSetBackend":
        """The folds of the fold set `root` with a trained model; SegstudioError naming the
        missing ones unless `allow_missing_folds` (ensemble.fold_runs)."""
        runs = fold_runs(root, allow_missing_folds)
        members = [TorchBackend.load(run, "cpu") for _, run in runs]
        metas = [m.meta for m in members]
        return cls(FoldEnsemble([m.model for m in members], metas), ensemble_meta(metas, [f for f, _ in runs]),
                   resolve_device(device)[0], runs[0][1])

    def logit_scale(self, x: torch.Tensor) -> float:
        """The folds' largest |logit| (over their temperatures): the ensemble's own output, a
        log of probabilities, can be smaller than the logits its rounding comes from."""
        return self.model.logit_scale(x)


class OnnxBackend:
    """An ONNX file `segstudio export` wrote, run by onnxruntime on the CPU's tensors."""

    name = "onnx"
    device = torch.device("cpu")
    run_dir = None

    def __init__(self, session, meta: dict):
        self.session, self.meta = session, meta

    @classmethod
    def load(cls, file: str | Path) -> "OnnxBackend":
        """The model of an exported ONNX file; SegstudioError when segstudio did not write it."""
        session = onnx_session(file)
        return cls(session, read_onnx_meta(file, session))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run_onnx(self.session, x.cpu().numpy()))


def load_backend(path: str | Path, device: str = "auto", allow_missing_folds: bool = False) -> Backend:
    """The backend for `path`: an exported ONNX file, a fold set (folds.json) or a run folder."""
    if Path(path).suffix.lower() == ".onnx" and Path(path).is_file():
        return OnnxBackend.load(path)
    if is_fold_set(path):
        return FoldSetBackend.load(path, device, allow_missing_folds)
    return TorchBackend.load(path, device)
