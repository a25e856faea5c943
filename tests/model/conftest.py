"""Run folders and a fold set of untrained U-Nets (resnet18 at 32 px), written as training writes
them: model.pth (weights only) beside model.json."""

import json
from pathlib import Path

import pytest
import torch

from segstudio.data.folds import FOLDS_FILE, fold_name
from segstudio.runs import save_model


def run_meta(**extra) -> dict:
    return {"format": 1, "arch": "resnet18", "n_in": 3, "n_out": 3, "codes": ["background", "liver", "kidney"],
            "size": 32, "mean": [0.2, 0.3, 0.4], "std": [0.3, 0.2, 0.25], "window": "auto", "norm": "batch",
            **extra}


def write_run(folder: Path, seed: int, shift: float = 0.0, **extra) -> Path:
    """A run folder with a random U-Net (seeded; its BatchNorm statistics made non-trivial);
    `shift`: added to every class's last bias (logits that large, the same probabilities)."""
    from segstudio.model.unet import build_unet
    from segstudio.preprocess.plan import Plan

    meta = run_meta(**extra)
    torch.manual_seed(seed)
    model = build_unet(Plan.from_meta(meta))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    state = model.state_dict()
    last = [name for name in state if name.endswith(".weight")][-1].replace(".weight", ".bias")
    state[last] += shift
    folder.mkdir(parents=True)
    save_model(folder, state, meta)
    return folder


@pytest.fixture(scope="session")
def model_run(tmp_path_factory) -> Path:
    """One run folder (read only)."""
    return write_run(tmp_path_factory.mktemp("run") / "run", seed=3)


@pytest.fixture(scope="session")
def fold_set(tmp_path_factory) -> Path:
    """Two folds (read only), each with its own normalisation; the second with a calibration
    temperature and logits shifted by 300 (a softmax does not see the shift, float32 rounding does)."""
    root = tmp_path_factory.mktemp("folds")
    write_run(root / fold_name(0), seed=0)
    write_run(root / fold_name(1), seed=1, shift=300.0, mean=[0.5] * 3, std=[0.2] * 3, temperature=2.0)
    (root / FOLDS_FILE).write_text(json.dumps({"folds": 2, "seed": 0, "runs": {"0": "fold_0", "1": "fold_1"}}))
    return root
