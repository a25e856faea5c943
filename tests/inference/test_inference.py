"""Export -> predict round trip, folder prediction and review scoring on a trained run."""

import numpy as np
import pytest
from PIL import Image

from segstudio.data import list_image_files
from segstudio.errors import SegstudioError
from segstudio.inference import Predictor, review_items
from segstudio.io.registry import read_image
from segstudio.preprocess.windowing import parse_window
from segstudio.training.metrics import dice_per_class, foreground_mean


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.load(trained_run[0].run_dir, device="cpu")


def test_predict_at_original_size_matches_ground_truth(predictor, sample_dirs):
    images, masks = sample_dirs
    path = list_image_files(images)[0]
    image, = read_image(path, parse_window(predictor.window)).frames
    pred = predictor.predict(image)
    assert pred.shape == image.shape[:2] and pred.dtype == np.uint8
    truth_file = next(p for p in masks.iterdir() if p.stem.startswith(path.stem))
    truth = np.asarray(Image.open(truth_file))
    # the masks store label values 0..K-1 directly
    assert foreground_mean(dice_per_class(pred, truth, len(predictor.codes))) > 0.4


def test_predict_any_size_and_rgb(predictor):
    rng = np.random.default_rng(0)
    for shape in [(37, 71), (50, 50, 3), (129, 64)]:
        pred = predictor.predict(rng.integers(0, 255, shape, dtype=np.uint8))
        assert pred.shape == shape[:2]
        assert pred.max() < len(predictor.codes)


def test_predict_folder_writes_masks_and_reports_bad_files(predictor, sample_dirs, tmp_path):
    images, _ = sample_dirs
    folder = tmp_path / "in"
    folder.mkdir()
    src = list_image_files(images)[:2]
    for p in src:
        (folder / p.name).write_bytes(p.read_bytes())
    Image.fromarray(np.full((40, 30), 128, np.uint8)).save(folder / "odd.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    report = predictor.predict_folder(folder, tmp_path / "out")
    assert len(report.written) == 3
    assert [p.path for p in report.problems] == ["broken.png"]
    odd = Image.open(tmp_path / "out" / "odd.png")
    assert odd.size == (30, 40) and odd.mode == "L"
    assert Image.open(tmp_path / "out" / "odd_color.png").mode == "RGB"


def test_load_without_model_says_so(tmp_path):
    with pytest.raises(SegstudioError, match="no trained model"):
        Predictor.load(tmp_path)


def test_review_items_worst_first_with_correct_dice(predictor, sample_data):
    items = review_items(predictor, sample_data)
    assert len(items) == len(sample_data.valid_idx)
    scores = [it.dice_mean for it in items if not np.isnan(it.dice_mean)]
    assert scores == sorted(scores)
    it = items[0]
    assert np.array_equal(it.target, sample_data.masks[it.index])
    expected = dice_per_class(it.pred, it.target, len(sample_data.codes))
    assert np.allclose(it.dice, expected, equal_nan=True)


def test_predict_with_tta_averages_with_the_mirror_image(trained_run, sample_dirs, tmp_path):
    import shutil

    from segstudio.cli.main import main

    images, _ = sample_dirs
    folder = tmp_path / "in"
    folder.mkdir()
    files = list_image_files(images)[:6]
    for path in files:
        shutil.copy(path, folder / path.name)
    run = trained_run[0].run_dir
    for name, extra in (("tta", ["--tta"]), ("plain", []), ("uncertainty", ["--uncertainty"])):
        assert main(["predict", "--model", run, "--images", str(folder), "--out", str(tmp_path / name),
                     "--device", "cpu", *extra]) == 0

    def masks(name):
        return [np.asarray(Image.open(p)) for p in sorted((tmp_path / name).glob("*.png"))
                if not p.stem.endswith(("_color", "_uncertainty"))]

    tta, plain, mirrored = masks("tta"), masks("plain"), masks("uncertainty")
    assert len(tta) == len(files)
    # the same mirrored average --uncertainty uses (without its maps), and not the plain prediction
    assert all(np.array_equal(a, b) for a, b in zip(tta, mirrored))
    assert not all(np.array_equal(a, b) for a, b in zip(tta, plain))
    assert not list((tmp_path / "tta").glob("*_uncertainty.png"))
