"""Continuing from a run (warm start, fine-tuning LRs, the parent recorded, clear refusals) and
the model's uncertainty (unlabelled images ranked, `predict --uncertainty`)."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from segstudio.cli import main
from segstudio.config import Arch
from segstudio.inference import Predictor
from segstudio.inference.review import unlabelled_items
from segstudio.training import events as ev
from segstudio.training.parent import FINE_TUNE_DIVISOR, continue_config
from segstudio.training.session import TrainingSession
from tests.conftest import tiny_config

DICE_FLOOR = 0.5


def test_a_continued_run_starts_where_its_parent_was(trained_run, sample_data, tmp_path):
    parent_final, _ = trained_run
    events = []
    cfg = tiny_config(tmp_path, epochs=1, bs=4, augment=False, init_from=parent_final.run_dir)
    final = TrainingSession().run(cfg, events.append, dataset=sample_data)
    assert isinstance(final, ev.Finished), final
    started = next(e for e in events if isinstance(e, ev.Started))
    parent_hi = json.loads((Path(parent_final.run_dir) / "config.json").read_text())["lr_hi"]
    assert math.isclose(started.lr_hi, parent_hi / FINE_TUNE_DIVISOR) and math.isclose(started.lr_lo, started.lr_hi / 10)
    first = next(e for e in events if isinstance(e, ev.EpochEnd))
    # one epoch from the parent's weights is already near the parent (from scratch it is not)
    assert first.dice_mean > max(DICE_FLOOR, parent_final.best_dice - 0.15), (first.dice_mean, parent_final.best_dice)
    config = json.loads((Path(final.run_dir) / "config.json").read_text())
    meta = json.loads((Path(final.run_dir) / "model.json").read_text())
    assert config["init_from"] == meta["parent"] == str(Path(parent_final.run_dir).absolute())
    assert config["pretrained"] is False  # what the chain's first encoder was, not "trained"
    start = next(e for e in events if isinstance(e, ev.WarningEvent) and "its model scores Dice" in e.message)
    start_dice = float(start.message.split("Dice ")[1].split(" ")[0])
    assert abs(start_dice - parent_final.best_dice) < 0.02  # the same model on the same validation set
    assert final.best_dice >= start_dice - 1e-3  # never ends worse than where it started
    # a further round of the loop keeps this run's rate instead of lowering it again
    again = continue_config(final.run_dir)
    assert math.isclose(again.lr_hi, started.lr_hi) and again.init_from == str(Path(final.run_dir).absolute())


def test_continuing_from_another_architecture_is_refused_clearly(trained_run, sample_data, tmp_path):
    parent_final, _ = trained_run
    cfg = tiny_config(tmp_path, arch=Arch.resnet34, init_from=parent_final.run_dir)
    final = TrainingSession().run(cfg, lambda e: None, dataset=sample_data)
    assert isinstance(final, ev.Failed) and "resnet18 U-Net" in final.message and "Choose resnet18" in final.message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unlabelled_images_are_ranked_most_uncertain_first(trained_run, sample_data, tmp_path):
    parent_final, _ = trained_run
    predictor = Predictor.load(parent_final.run_dir, device="cpu")
    folder = tmp_path / "new"
    folder.mkdir()
    for k in range(3):  # two images like the training ones, and noise
        shutil.copy(sample_data.volumes[k].sources[0], folder / f"like{k}.png")
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(folder / "noise.png")
    data = type(sample_data)(sample_data.images, sample_data.masks, sample_data.volumes, sample_data.codes,
                             sample_data.train_idx, sample_data.valid_idx, sample_data.window, sample_data.size,
                             unlabelled=[str(p) for p in sorted(folder.iterdir())])
    items, problems = unlabelled_items(predictor, data)
    assert not problems and len(items) == 4
    scores = [it.uncertainty for it in items]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert all(it.uncertainty_map.shape == it.pred.shape == (data.size, data.size) for it in items)
    assert items[0].target is None and items[0].mask_file == ""


def test_predict_uncertainty_writes_maps_and_a_ranking(trained_run, sample_dirs, tmp_path, capsys):
    parent_final, _ = trained_run
    images, _ = sample_dirs
    out = tmp_path / "pred"
    assert main(["predict", "--model", parent_final.run_dir, "--images", str(images), "--out", str(out),
                 "--device", "cpu", "--uncertainty"]) == 0
    assert "most uncertain:" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "uncertainty.csv")))
    n_images = len([p for p in images.iterdir() if p.is_file()])
    assert len(rows) == n_images and [int(r["rank"]) for r in rows] == list(range(1, n_images + 1))
    values = [float(r["mean_entropy"]) for r in rows]
    assert values == sorted(values, reverse=True)
    first = rows[0]["mask"]
    u = np.asarray(Image.open(out / first.replace(".png", "_uncertainty.png")))
    assert u.shape == np.asarray(Image.open(out / first)).shape and u.dtype == np.uint8
    assert abs(u.mean() / 255 - values[0]) < 0.01  # the map is what the ranking averaged
