"""Training on patches at native resolution: tiles that score each pixel once, foreground-aware
random crops, the native copy of the images, and a run on large non-square images that learns."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.config import DataConfig, InputMode
from segstudio.data import load_dataset
from segstudio.data.native import NativeStore
from segstudio.training import events as ev
from segstudio.training.losses import IGNORE
from segstudio.training.patches import PatchPairs, TilePairs, input_mode, tile_starts
from segstudio.training.session import TrainingSession
from tests.conftest import tiny_config


def large_pairs(folder: Path, n: int = 12, shape=(180, 260), seed: int = 0) -> tuple[Path, Path]:
    """Non-square images with small discs (class 1) and a few tiny squares (class 2, rare)."""
    rng = np.random.default_rng(seed)
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for i in range(n):
        mask = np.zeros(shape, np.uint8)
        for _ in range(4):
            cy, cx = rng.integers(10, shape[0] - 10), rng.integers(10, shape[1] - 10)
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 49] = 1
        cy, cx = rng.integers(5, shape[0] - 5), rng.integers(5, shape[1] - 5)
        mask[cy - 2:cy + 3, cx - 2:cx + 3] = 2
        image = (40 + 90 * (mask == 1) + 180 * (mask == 2) + rng.normal(0, 12, shape)).clip(0, 255)
        Image.fromarray(image.astype(np.uint8)).save(images / f"img{i:02d}.png")
        Image.fromarray(mask * 127).save(masks / f"img{i:02d}.png")
    return images, masks


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    return large_pairs(tmp_path_factory.mktemp("large"))


def store_dataset(shapes, size=64):
    """A SegDataset whose native store holds random masks of `shapes` (the resized cache unused)."""
    from segstudio.data.items import SegDataset, VolumeRef

    rng = np.random.default_rng(1)
    masks = [rng.integers(0, 3, s).astype(np.uint8) for s in shapes]
    images = [rng.integers(0, 255, (1, *s)).astype(np.uint8) for s in shapes]
    vols = [VolumeRef(f"v{k}", ("x",), "m", f"v{k}", k, 1, (1, *s)) for k, s in enumerate(shapes)]
    data = SegDataset(np.zeros((len(shapes), 1, size, size), np.uint8), np.zeros((len(shapes), size, size), np.uint8),
                      vols, ["bg", "a", "b"], np.arange(len(shapes)), np.arange(len(shapes)), "auto", size)
    data.native = NativeStore(images, masks, 1.0)
    return data


def test_tiles_score_every_pixel_exactly_once():
    shapes = [(64, 64), (65, 130), (40, 200), (30, 20), (191, 77)]
    data = store_dataset(shapes)
    tiles = TilePairs(data, np.arange(len(shapes)), 64)
    images, masks = tiles.batch(np.arange(len(tiles)))
    counts = np.zeros(3, np.int64)
    for k in range(len(tiles)):
        m = masks[k].numpy()
        counts += np.bincount(m[m != IGNORE].ravel(), minlength=3)[:3]
    expected = sum(np.bincount(m.ravel(), minlength=3) for m in data.native.masks)
    assert (counts == expected).all()  # summed tile scores are the whole images'
    assert tile_starts(100, 64) == [0, 36] and tile_starts(64, 64) == [0] and tile_starts(20, 64) == [0]


def test_patches_find_a_rare_class_more_often_than_uniform_crops():
    data = store_dataset([(400, 400)])
    data.native.masks[0][:] = 0
    data.native.masks[0][300:304, 50:54] = 2  # 16 pixels of a rare class
    data.native.locations = []
    data.native.__post_init__()
    np.random.seed(0)
    pairs = PatchPairs(data, np.array([0]), 64, n=300)
    _, masks = pairs.batch(np.arange(300))
    share = float(((masks == 2).flatten(1).any(dim=1)).float().mean())
    uniform = (64 + 3) ** 2 / (400 - 63) ** 2  # chance that a uniform crop holds the 4x4 square
    assert share > 0.25 > 3 * uniform, share
    assert masks.shape == (300, 64, 64) and int(masks.max()) == 2


def test_the_native_copy_keeps_each_images_own_size(large):
    images, masks = large
    data, _ = load_dataset(DataConfig(images=str(images), masks=str(masks)), 64, native_scale=0.5)
    assert data.native is not None and len(data.native.images) == len(data)
    assert data.native.shape(0) == (90, 130) and data.native.images[0].shape == (1, 90, 130)
    assert set(np.unique(np.concatenate([m.ravel() for m in data.native.masks]))) == {0, 1, 2}
    assert all(2 in loc for loc in data.native.locations)  # the rare class is findable in every image
    plain, _ = load_dataset(DataConfig(images=str(images), masks=str(masks)), 64)
    assert plain.native is None
    cfg = tiny_config(Path("/tmp"), size=64, input_mode=InputMode.auto)
    assert input_mode(cfg, data)[0] == "patches"  # 260 px >= 3 x 64
    cfg.input_mode = InputMode.resize
    assert input_mode(cfg, data)[0] == "resize"


@pytest.mark.slow
def test_a_patch_run_on_large_images_learns_and_says_how_to_predict(large, tmp_path):
    images, masks = large
    cfg = tiny_config(tmp_path, size=64, bs=8, epochs=4, augment=False, input_mode=InputMode.auto)
    cfg.data.images, cfg.data.masks = str(images), str(masks)
    events = []
    final = TrainingSession().run(cfg, events.append)
    assert isinstance(final, ev.Finished), final
    run = Path(final.run_dir)
    meta = json.loads((run / "model.json").read_text())
    assert meta["input"] == {"mode": "patches", "patch": 64, "scale": 1.0, "overlap": 0.5}
    assert json.loads((run / "config.json").read_text())["input_mode"] == "patches"
    started = next(e for e in events if isinstance(e, ev.Started))
    assert started.iters_per_epoch >= 4  # an epoch covers the images' pixels (10 x 180 x 260 / 64²)
    assert any(isinstance(e, ev.WarningEvent) and "native resolution" in e.message for e in events)
    preview = next(e for e in events if isinstance(e, ev.Preview))
    assert preview.images[0].shape == (64, 64)
    assert final.best_dice > 0.5  # full-resolution Dice of the validation images, summed over tiles
