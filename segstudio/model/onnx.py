"""Exported ONNX models: an onnxruntime session, a forward pass, and the segstudio metadata the
file carries (its model.json, under METADATA_KEY). onnxruntime only: no fastai."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import SegstudioError

METADATA_KEY = "segstudio"


def onnx_session(path: str | Path, cpu: bool = False):
    """An onnxruntime session: CUDA first when onnxruntime has it, unless `cpu` (the export's
    check: float32 on the CPU, as PyTorch's reference is computed)."""
    import onnxruntime as ort

    wanted = ("CPUExecutionProvider",) if cpu else ("CUDAExecutionProvider", "CPUExecutionProvider")
    providers = [p for p in wanted if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), providers=providers)


def run_onnx(path_or_session, x: np.ndarray) -> np.ndarray:
    session = onnx_session(path_or_session) if isinstance(path_or_session, (str, Path)) else path_or_session
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})[0]


def read_onnx_meta(path: str | Path, session=None) -> dict:
    """The segstudio metadata of an exported ONNX model (`session`: one already open on it);
    SegstudioError when it has none."""
    text = (session or onnx_session(path)).get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if not text:
        raise SegstudioError(f"{Path(path).name} is an ONNX model without segstudio's metadata: export it "
                             "with `segstudio export` to predict with it here")
    return json.loads(text)
