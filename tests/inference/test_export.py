"""Exported models: ONNX and TorchScript files that describe themselves and match PyTorch, a check
that refuses a mismatch, and `predict` with an ONNX model without fastai."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.cli.main import main
from segstudio.errors import SegstudioError
from segstudio.inference import Predictor
from segstudio.files import FILE_MODE
from segstudio.inference.export import RELATIVE_TOLERANCE, TORCHSCRIPT_META, export_model
from segstudio.model.onnx import read_onnx_meta


@pytest.fixture(scope="module")
def onnx_file(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.onnx"
    report = export_model(trained_run[0].run_dir, "onnx", out)
    return out, report


def test_onnx_export_describes_itself_and_matches_pytorch(onnx_file, trained_run, capsys):
    out, report = onnx_file
    assert report.max_abs_diff <= report.tolerance == pytest.approx(RELATIVE_TOLERANCE * report.logit_scale)
    assert report.mask_agreement == 1.0 and out.is_file()
    meta = read_onnx_meta(out)
    run_meta = json.loads((Path(trained_run[0].run_dir) / "model.json").read_text())
    assert meta["codes"] == run_meta["codes"] and meta["size"] == run_meta["size"] and meta["mean"] == run_meta["mean"]
    assert "softmax" in meta["exported"]["output"]
    assert main(["export", "--model", trained_run[0].run_dir, "--format", "onnx", "--out", str(out.with_name("cli.onnx"))]) == 0
    printed = capsys.readouterr().out
    assert "probabilities differ by at most" in printed and "masks agree on 100.00%" in printed
    assert "classes background" in printed


def test_exported_files_have_a_plain_file_s_mode(onnx_file, trained_run, tmp_path):
    out, _ = onnx_file
    assert out.stat().st_mode & 0o777 == FILE_MODE
    script = export_model(trained_run[0].run_dir, "torchscript", tmp_path / "m.pt")
    assert Path(script.path).stat().st_mode & 0o777 == FILE_MODE


def scaled_run(run_dir, tmp_path, factor: float) -> Path:
    """A copy of the run whose logits are `factor` times larger (its last layer scaled)."""
    copy = tmp_path / "scaled"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint.pth"))
    state = torch.load(copy / "model.pth", weights_only=True)
    last = [name for name in state if name.endswith(".weight")][-1]
    for name in (last, last.replace(".weight", ".bias")):
        state[name] = state[name] * factor
    torch.save(state, copy / "model.pth")
    return copy


def test_the_check_allows_float32_rounding_at_the_model_s_logit_scale(trained_run, tmp_path):
    """A correct export of a model with large logits (instance norm from a random encoder reaches
    hundreds; here the tiny run's tens made a hundred times larger) differs from PyTorch by more
    than a fixed 1e-4 (6.8e-4 measured) through float32 rounding alone, and passes."""
    run = scaled_run(trained_run[0].run_dir, tmp_path, 100.0)
    report = export_model(run, "onnx", tmp_path / "big.onnx")
    assert report.logit_scale > 1000 and report.mask_agreement == 1.0
    assert report.max_abs_diff <= report.tolerance


def test_an_export_that_is_slightly_off_is_refused(trained_run, tmp_path, monkeypatch):
    """The tolerance is no wider than it needs to be: inputs half a grey level off are caught."""
    import segstudio.inference.export as export

    honest = export.run_onnx
    monkeypatch.setattr(export, "run_onnx", lambda session, x: honest(session, np.clip(x + 0.5 / 255, 0, 1)))
    with pytest.raises(SegstudioError, match="differs from PyTorch"):
        export_model(trained_run[0].run_dir, "onnx", tmp_path / "off.onnx")
    assert not (tmp_path / "off.onnx").exists()


def test_torchscript_export_carries_the_metadata(trained_run, tmp_path):
    report = export_model(trained_run[0].run_dir, "torchscript", tmp_path / "m.pt")
    files = {TORCHSCRIPT_META: ""}
    model = torch.jit.load(report.path, _extra_files=files)
    assert json.loads(files[TORCHSCRIPT_META])["codes"] == report.meta["codes"]
    x = torch.rand(3, report.meta["n_in"], report.meta["size"], report.meta["size"])
    probs = model(x)
    assert probs.shape[:2] == (3, len(report.meta["codes"])) and torch.allclose(probs.sum(1), torch.ones(1), atol=1e-5)


def test_an_export_into_folders_that_do_not_exist_yet_makes_them(trained_run, tmp_path):
    report = export_model(trained_run[0].run_dir, "torchscript", tmp_path / "new" / "deeper" / "m.pt")
    assert report.path == str(tmp_path / "new" / "deeper" / "m.pt") and (tmp_path / "new" / "deeper" / "m.pt").is_file()
    report = export_model(trained_run[0].run_dir, "torchscript", str(tmp_path / "folder") + "/")
    assert (tmp_path / "folder").is_dir() and (tmp_path / "folder" / "model.pt").is_file()


def test_a_mismatch_fails_and_writes_nothing(trained_run, tmp_path):
    with pytest.raises(SegstudioError, match="differs from PyTorch"):
        export_model(trained_run[0].run_dir, "onnx", tmp_path / "m.onnx", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []  # no file, no temporary left behind


def test_predict_with_onnx_gives_the_run_s_masks_without_fastai(onnx_file, trained_run, sample_dirs, tmp_path):
    out, _ = onnx_file
    images = tmp_path / "images"
    images.mkdir()
    for p in sorted(sample_dirs[0].iterdir())[:6]:
        (images / p.name).write_bytes(p.read_bytes())
    run = trained_run[0].run_dir
    assert main(["predict", "--model", run, "--images", str(images), "--out", str(tmp_path / "torch"),
                 "--device", "cpu"]) == 0
    code = ("import sys; sys.modules['fastai'] = None\n"  # any fastai import fails
            "from segstudio.cli.main import main\n"
            f"sys.exit(main(['predict', '--model', {str(out)!r}, '--images', {str(images)!r}, "
            f"'--out', {str(tmp_path / 'onnx')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    torch_masks = sorted((tmp_path / "torch").glob("*[0-9].png"))
    assert torch_masks and len(torch_masks) == len(list((tmp_path / "onnx").glob("*[0-9].png")))
    agree = [np.mean(np.asarray(Image.open(p)) == np.asarray(Image.open(tmp_path / "onnx" / p.name)))
             for p in torch_masks]
    assert min(agree) > 0.999, min(agree)
    assert Predictor.load(out).backend == "onnx"
