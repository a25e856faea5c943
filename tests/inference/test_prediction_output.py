"""Prediction never replaces a file segstudio did not write (images, ground truth, user edits)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.errors import SegstudioError
from segstudio.inference import Predictor
from segstudio.inference.outputs import MANIFEST
from segstudio.model.backends import TorchBackend

ROOT = Path(__file__).resolve().parents[2]
CODES = ["background", "foreground"]


class Bright(torch.nn.Module):
    """A stand-in model: foreground where the normalised image is above zero."""

    def forward(self, x):
        fg = x.mean(dim=1, keepdim=True)
        return torch.cat([-fg, fg], dim=1)


def predictor(training=("", "")) -> Predictor:
    meta = {"codes": CODES, "size": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "window": "auto"}
    return Predictor(TorchBackend(Bright(), meta, torch.device("cpu")), training)


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, (20, 24), dtype=np.uint16)


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(image(i)).save(folder / f"img{i}.png")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_output_into_the_images_folder_is_refused_and_nothing_changes(images):
    before = snapshot(images)
    with pytest.raises(SegstudioError, match="is the images folder"):
        predictor().predict_folder(images, images)
    with pytest.raises(SegstudioError, match="is the images folder"):
        predictor().predict_folder(images, images.parent / "images" / ".")
    assert snapshot(images) == before


def test_output_into_the_training_masks_folder_is_refused(images, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(np.ones((20, 24), np.uint8) * 255).save(masks / "img0.png")
    before = snapshot(masks)
    with pytest.raises(SegstudioError, match="training masks folder"):
        predictor(("", str(masks))).predict_folder(images, masks)
    link = tmp_path / "link"
    link.symlink_to(masks, target_is_directory=True)
    with pytest.raises(SegstudioError, match="ground truth folder"):
        predictor().predict_folder(images, link, protected=(("ground truth", str(masks)),))
    assert snapshot(masks) == before


def test_existing_user_files_are_left_alone_and_reported(images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(image(7)).save(out / "img1.png")  # the user's own file, same name as a mask
    users = (out / "img1.png").read_bytes()
    report = predictor().predict_folder(images, out)
    assert (out / "img1.png").read_bytes() == users
    assert [(p.path, p.reason) for p in report.left_alone] == [
        ("img1.png", "exists and was not written by segstudio")]
    assert sorted(Path(p).name for p in report.written) == ["img0.png", "img2.png"]


def test_previous_predictions_are_replaced_but_edited_ones_kept(images, tmp_path):
    out = tmp_path / "out"
    first = predictor().predict_folder(images, out)
    assert len(first.written) == 3 and not first.left_alone
    assert set(json.loads((out / MANIFEST).read_text())["files"]) >= {"img0.png", "img0_color.png"}
    edited = np.asarray(Image.open(out / "img2.png")).copy()
    edited[:5] = 1  # the user corrects a predicted mask in place
    Image.fromarray(edited).save(out / "img2.png")
    edited_bytes = (out / "img2.png").read_bytes()
    second = predictor().predict_folder(images, out)
    assert sorted(Path(p).name for p in second.written) == ["img0.png", "img1.png"]
    assert [(p.path, p.reason) for p in second.left_alone] == [
        ("img2.png", "was changed after segstudio wrote it")]
    assert (out / "img2.png").read_bytes() == edited_bytes


def test_two_images_with_one_output_name_write_once_and_the_skipped_one_is_named(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(image(0)).save(folder / "a.png")
    Image.fromarray(image(1)).save(folder / "a.tif")
    report = predictor().predict_folder(folder, tmp_path / "out")
    assert len(report.written) == 1 and not report.left_alone  # nothing was in the folder before
    [skipped] = report.problems
    assert skipped.path == "a.tif"
    assert "a.png" in skipped.reason and "(written)" in skipped.reason and "rename" in skipped.reason


def test_output_names_keep_the_users_names(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("slide 00.png", "Gewebe-ä 3.png", "片.png"):
        Image.fromarray(image(0)).save(folder / name)
    report = predictor().predict_folder(folder, tmp_path / "out")
    assert sorted(Path(p).name for p in report.written) == ["Gewebe-ä 3.png", "slide 00.png", "片.png"]
    assert (tmp_path / "out" / "slide 00_color.png").is_file()


def test_safe_name_replaces_only_what_a_file_name_cannot_hold():
    from segstudio.inference.predictor import safe_name

    assert safe_name("slide 00") == "slide 00" and safe_name("scan#3") == "scan#3"
    assert safe_name('a/b\\c:d*e?"f<g>h|i') == "a_b_c_d_e__f_g_h_i"
    assert safe_name("trailing. ") == "trailing" and safe_name("..") == "image"


def test_cli_names_the_skipped_image_and_suggests_no_empty_folder(tmp_path, capsys, monkeypatch):
    from segstudio.cli.main import main

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(image(0)).save(folder / "a.png")
    Image.fromarray(image(1)).save(folder / "a.tif")
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, *a, **k: predictor()))
    assert main(["predict", "--model", "run", "--images", str(folder), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "skipped a.tif: its output would be named a.png" in err
    assert "empty folder" not in err and "left alone" not in err


def test_problem_lines_name_the_file_once(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    report = predictor().predict_folder(folder, tmp_path / "out")
    [problem] = report.problems
    assert problem.path == "broken.png" and "broken.png" not in problem.reason


@pytest.mark.slow
def test_cli_refuses_to_predict_into_the_images_folder(images, tmp_path):
    from fastai.vision.learner import create_unet_model

    from segstudio.runs import save_model
    from segstudio.model.weights import architecture

    run = tmp_path / "run"
    run.mkdir()
    model = create_unet_model(architecture("resnet18"), 2, (32, 32), pretrained=False, n_in=3)
    save_model(run, model.state_dict(), {"arch": "resnet18", "n_in": 3, "n_out": 2, "codes": CODES,
                                         "size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                                         "window": "auto"})
    before = snapshot(images)
    out = subprocess.run([sys.executable, "-m", "segstudio", "predict", "--model", str(run), "--images",
                          str(images), "--out", str(images), "--device", "cpu"],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 2 and "is the images folder" in out.stderr
    assert snapshot(images) == before


def test_an_image_whose_mask_is_left_alone_gets_no_other_file(images, tmp_path):
    """A kept (user's) mask must not be contradicted by a new colour mask or probabilities."""
    out = tmp_path / "out"
    out.mkdir()
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(out / "img1.png")
    predictor().predict_folder(images, out, save_probabilities=True)
    assert not (out / "img1_color.png").exists() and not (out / "img1.npz").exists()
    assert (out / "img0_color.png").exists() and (out / "img0.npz").exists()


def test_a_folder_of_the_users_masks_gets_nothing(images, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(3):
        Image.fromarray(np.ones((20, 24), np.uint8)).save(masks / f"img{i}.png")
    before = snapshot(masks)
    report = predictor().predict_folder(images, masks)
    assert not report.written and len(report.left_alone) == 3
    assert snapshot(masks) == before and not (masks / MANIFEST).exists()


def test_a_run_name_is_one_folder(tmp_path):
    from segstudio.runs import new_run_dir

    path = new_run_dir(tmp_path, "liver/400/../40")
    assert path.parent == tmp_path and path.name.endswith("-liver_400_.._40")
