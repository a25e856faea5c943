"""Continuing from a run (warm start, fine-tuning LRs, the parent recorded, clear refusals) and
the model's uncertainty (unlabelled images ranked, `predict --uncertainty`)."""

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.cli.main import main
from segstudio.config import Arch, DataConfig, TrainConfig
from segstudio.data.corrections import corrections_dir
from segstudio.inference import Predictor
from segstudio.inference.review import unlabelled_items
from segstudio.training import events as ev
from segstudio.training.parent import FINE_TUNE_DIVISOR, continue_config
from segstudio.training.session import TrainingSession
from segstudio.workers import review_task
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


@pytest.fixture(scope="module")
def corrected(sample_dirs, tmp_path_factory):
    """A third of the sample (a CT dataset, every patient) with one mask corrected as the review
    saves it: the liver drawn over body and air, so the window "auto" computes from the masks moves."""
    root = tmp_path_factory.mktemp("corrected")
    images, masks = root / "images", root / "masks"
    images.mkdir()
    shutil.copytree(sample_dirs[1], masks, ignore=lambda folder, names: [n for n in names if n.endswith(".png")])
    for image in sorted(sample_dirs[0].iterdir())[::3]:
        shutil.copy(image, images)
        shutil.copy(sample_dirs[1] / f"{image.stem}.png", masks)
    first = sorted(masks.glob("*.png"))[0]
    mask = np.zeros_like(np.asarray(Image.open(first)))
    mask[: mask.shape[0] // 2] = 1
    corrections_dir(masks).mkdir()
    Image.fromarray(mask).save(corrections_dir(masks) / first.name)
    return DataConfig(images=str(images), masks=str(masks))


def reviewed(run_dir: str, data: DataConfig | None = None) -> dict:
    """The run's review items by (file, frame), as the app computes them."""
    review = review_task(run_dir, None, data, progress=lambda *a: None, should_stop=lambda: False)
    assert review.items, review.note
    return {(it.source, it.frame): it for it in review.items}


def parents_own_review(parent_dir: str, data: DataConfig) -> dict:
    """The parent's review on the corrected data: its own settings, its data where it is now."""
    recorded = TrainConfig.load(Path(parent_dir) / "config.json").data
    return reviewed(parent_dir, DataConfig(**{**vars(recorded), "images": data.images, "masks": data.masks}))


def continued(parent_dir: str, data: DataConfig, tmp_path, **data_settings):
    """A one-epoch run continued from `parent_dir` on `data`, as the app's Continue starts it."""
    base = tiny_config(tmp_path, data=DataConfig(**{**vars(data), **data_settings}))
    config = continue_config(parent_dir, base)
    config.epochs = 1
    events = []
    final = TrainingSession().run(config, events.append)
    assert isinstance(final, ev.Finished), final
    return final, events


def test_a_continued_run_sees_its_inputs_as_its_parent_did(trained_run, corrected, tmp_path):
    parent_final, _ = trained_run
    parent = Path(parent_final.run_dir)
    final, events = continued(parent_final.run_dir, corrected, tmp_path)
    window = json.loads((parent / "config.json").read_text())["data"]["window"]
    child = Path(final.run_dir)
    # not recomputed from the corrected masks: the parent's window, as recorded by both
    assert json.loads((child / "config.json").read_text())["data"]["window"] == window
    assert json.loads((child / "model.json").read_text())["window"] == window
    assert json.loads((child / "config.json").read_text())["data"]["labels"] == "classes"
    assert not [e for e in events if isinstance(e, ev.WarningEvent) and "prepares images unlike" in e.message]
    started = next(e for e in events if isinstance(e, ev.Started))
    assert started.parent_run == str(parent.absolute())  # the log says whose weights it starts from
    # the Parent Dice beside the child is the parent's own review of the same images
    own, child_items = parents_own_review(parent_final.run_dir, corrected), reviewed(final.run_dir)
    assert set(child_items) <= set(own)
    scores = [(child_items[k].parent_dice, own[k].dice_mean) for k in child_items]
    assert any(math.isfinite(a) for a, _ in scores)
    assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in scores), scores


def test_a_changed_window_is_said_and_the_parent_still_scored_as_its_own_review(trained_run, corrected, tmp_path):
    parent_final, _ = trained_run
    final, events = continued(parent_final.run_dir, corrected, tmp_path, window="2000/300")
    assert json.loads((Path(final.run_dir) / "model.json").read_text())["window"] == "2000/300"  # the user's
    recorded = json.loads((Path(parent_final.run_dir) / "config.json").read_text())["data"]["window"]
    said = [e.message for e in events if isinstance(e, ev.WarningEvent)]
    assert any(f"window 2000/300 (parent: {recorded})" in m for m in said), said
    assert any("its model scores Dice" in m and "with this run's inputs" in m for m in said), said
    own, child_items = parents_own_review(parent_final.run_dir, corrected), reviewed(final.run_dir)
    scores = [(child_items[k].parent_dice, own[k].dice_mean) for k in child_items]
    assert any(math.isfinite(a) for a, _ in scores)
    assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in scores), scores
