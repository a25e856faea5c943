"""`segstudio train --folds K`: every labelled image validated by exactly one fold, a fold set
that predicts as an ensemble, refuses a missing fold unless allowed, and resumes where it stopped."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from segstudio.cli.main import main

pytestmark = pytest.mark.slow

TINY = ["--epochs", "1", "--size", "32", "--bs", "8", "--input", "resize", "--arch", "resnet18", "--no-pretrained",
        "--device", "cpu", "--no-metrics"]


def _n_valid(run_dir) -> int:
    for line in (run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "Started":
            return event["n_valid"]
    raise AssertionError(f"no Started event in {run_dir}")


def test_a_fold_set_trains_predicts_as_an_ensemble_and_resumes(sample_dirs, tmp_path, capsys):
    images, masks = sample_dirs
    n_images = len(list(images.iterdir()))
    args = ["train", "--images", str(images), "--masks", str(masks), *TINY, "--out", str(tmp_path), "--name", "fs"]
    assert main([*args, "--folds", "2"]) == 0
    root = tmp_path / "fs"
    assert json.loads((root / "folds.json").read_text())["folds"] == 2
    assert all((root / f"fold_{f}" / "model.pth").is_file() for f in (0, 1))
    assert _n_valid(root / "fold_0") + _n_valid(root / "fold_1") == n_images  # each image validated once
    assert json.loads((root / "fold_1" / "config.json").read_text())["data"]["fold"] == 1

    out = tmp_path / "pred"
    assert main(["predict", "--model", str(root), "--images", str(images), "--out", str(out)]) == 0
    assert "ensemble of folds 0, 1" in capsys.readouterr().err
    masks_written = [p for p in out.glob("*.png") if not p.stem.endswith("_color")]
    assert len(masks_written) == n_images and np.asarray(Image.open(masks_written[0])).max() < 3

    shutil.rmtree(root / "fold_1")  # a fold lost (or never trained)
    assert main(["predict", "--model", str(root), "--images", str(images), "--out", str(tmp_path / "p2")]) == 2
    assert "--allow-missing-folds" in capsys.readouterr().err
    assert main(["predict", "--model", str(root), "--images", str(images), "--out", str(tmp_path / "p3"),
                 "--allow-missing-folds"]) == 0

    before = (root / "fold_0" / "model.pth").stat().st_mtime_ns
    assert main(["train", "--resume", str(root), "--no-metrics"]) == 0
    err = capsys.readouterr().err
    assert "fold 0 of 2: already trained" in err and (root / "fold_1" / "model.pth").is_file()
    assert (root / "fold_0" / "model.pth").stat().st_mtime_ns == before


def test_more_folds_than_patients_is_refused_before_training(sample_dirs, tmp_path, capsys):
    images, masks = sample_dirs
    status = main(["train", "--images", str(images), "--masks", str(masks), *TINY, "--out", str(tmp_path),
                   "--name", "fs", "--folds", "50"])
    assert status == 1
    err = capsys.readouterr().err
    assert "50 folds need at least 50" in err and "or fewer" in err
    assert not (tmp_path / "fs").exists()  # no husk of a fold set left behind


def _pngs(images, masks, names, seed=0):
    rng = np.random.default_rng(seed)
    images.mkdir(exist_ok=True)
    masks.mkdir(exist_ok=True)
    for name in names:
        img = rng.integers(0, 60, (32, 32), dtype=np.uint8)
        r, c = rng.integers(4, 18, 2)
        mask = np.zeros((32, 32), np.uint8)
        mask[r:r + 10, c:c + 10] = 1
        Image.fromarray(np.where(mask, 200, img).astype(np.uint8)).save(images / f"{name}.png")
        Image.fromarray(mask).save(masks / f"{name}.png")


def test_a_continued_fold_set_starts_each_fold_from_its_parent_fold_and_keeps_every_case_in_its_fold(
        tmp_path, capsys):
    images, masks = tmp_path / "images", tmp_path / "masks"
    _pngs(images, masks, [f"case{i}" for i in range(8)])
    base = ["--images", str(images), "--masks", str(masks), *TINY, "--out", str(tmp_path)]
    assert main(["train", *base, "--name", "fs", "--folds", "2"]) == 0
    parent = tmp_path / "fs"
    held = {f: set(json.loads((parent / f"fold_{f}" / "split.json").read_text())["valid"]) for f in (0, 1)}
    assert held[0] | held[1] == {f"case{i}" for i in range(8)} and not held[0] & held[1]

    _pngs(images, masks, ["new0", "new1"], seed=1)  # cases added since
    assert main(["train", "--init-from", str(parent), "--images", str(images), "--masks", str(masks),
                 "--out", str(tmp_path), "--device", "cpu", "--no-metrics", "--epochs", "1"]) == 0
    child = tmp_path / "fs-continued"
    assert json.loads((child / "folds.json").read_text())["folds"] == 2
    for f in (0, 1):
        config = json.loads((child / f"fold_{f}" / "config.json").read_text())
        assert config["init_from"] == str(parent / f"fold_{f}")  # each fold from its parent fold
        valid = set(json.loads((child / f"fold_{f}" / "split.json").read_text())["valid"])
        assert valid - held[f] <= {"new0", "new1"} and held[f] <= valid  # no case its parent trained on
    assert "Continuing from fold_0" in capsys.readouterr().err
    assert main(["predict", "--model", str(child), "--images", str(images), "--out", str(tmp_path / "pc")]) == 0
    assert "ensemble of folds 0, 1" in capsys.readouterr().err  # folds with different parents average

    assert main(["train", "--init-from", str(parent), *base, "--folds", "3"]) == 2  # a fold set keeps its K
    assert "has 2 folds" in capsys.readouterr().err
    shutil.rmtree(parent / "fold_1")
    assert main(["train", "--init-from", str(parent), *base]) == 1
    assert "fold(s) 1 have no trained model" in capsys.readouterr().err
