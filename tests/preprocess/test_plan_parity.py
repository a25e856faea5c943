"""Parity: the tensor the predictor feeds the model for a validation image (or slice) is the one
training fed it, bit for bit, for a 2-D run on resized images, a run on patches and a 2.5-D run
on scans. Training's side is its validation DataLoader (the cache, IntToFloatTensor, grey to
three channels, Normalize); the predictor's is predict_folder on the files (reading, the recipe,
the sliding window, its own normalisation), with a model that records what it is given. Nothing
is trained."""

from pathlib import Path

import numpy as np
import pytest
import torch

from segstudio.config import DataConfig, TrainConfig
from segstudio.data import list_image_files, load_dataset, sample_dataset
from segstudio.data.sample_volumes import sample_volumes
from segstudio.inference import Predictor
from segstudio.model.backends import TorchBackend
from segstudio.inference.sliding_window import window_positions
from segstudio.preprocess.plan import make_plan
from segstudio.training.loaders import build_dataloaders, dataset_stats
from segstudio.training.patches import tile_starts

CPU = torch.device("cpu")


class Recorder(torch.nn.Module):
    """A stand-in model: keeps every input it is given, returns zero logits."""

    def __init__(self, classes: int):
        super().__init__()
        self.classes, self.inputs = classes, []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return torch.zeros(x.shape[0], self.classes, *x.shape[-2:])


def training_inputs(data, stats) -> torch.Tensor:
    """What training fed the model for each validation batch item, in the loader's order."""
    dls = build_dataloaders(data, 4, CPU, augment=False, stats=stats)
    return torch.cat([x.as_subclass(torch.Tensor) for x, _ in dls.valid])


def predicted_inputs(data, config, stats, images: Path, out: Path) -> tuple[torch.Tensor, dict]:
    """What the predictor fed the model predicting the folder `images`, and the run's plan."""
    plan = make_plan(config, data, pretrained=False, norm="batch", stats=stats, head=0)
    recorder = Recorder(len(data.codes))
    predictor = Predictor(TorchBackend(recorder, plan.to_meta(), CPU))
    report = predictor.predict_folder(images, out)
    assert not report.problems, report.problems
    return torch.cat(recorder.inputs), plan


def sample_2d(tmp_path, size: int) -> tuple[Path, Path]:
    return sample_dataset(tmp_path / "sample", n=10, size=size, n_patients=5)


def test_a_resized_2d_run_predicts_on_what_it_trained_on(tmp_path):
    """CT slices (DICOM, one HU window computed for the dataset): 96 px resized to 32 px in HU,
    then windowed."""
    images, masks = sample_2d(tmp_path, 96)
    config = TrainConfig(data=DataConfig(str(images), str(masks), valid_pct=0.4), size=32)
    data, _ = load_dataset(config.data, config.size)
    assert "/" in data.window and len(data.valid_idx) >= 2  # the dataset's CT window, "W/L"
    stats = dataset_stats(data)
    trained = training_inputs(data, stats)
    predicted, plan = predicted_inputs(data, config, stats, images, tmp_path / "out")
    assert plan.window == data.window and plan.input_mode == "resize"
    files = [p.name for p in list_image_files(images)]  # predict_folder's order: one frame a file
    for row, i in enumerate(data.valid_idx):
        k = files.index(Path(data.sources[i]).name)
        assert predicted[k].shape == (3, 32, 32)
        assert torch.equal(predicted[k], trained[row]), data.name(i)


def test_a_patch_run_predicts_on_what_it_trained_on(tmp_path):
    """96 px CT slices scaled by 0.5 (resampled in HU, then windowed) and cut into 32 px
    windows: every validation tile of training is one of the sliding window's windows."""
    images, masks = sample_2d(tmp_path, 96)
    config = TrainConfig(data=DataConfig(str(images), str(masks), valid_pct=0.4), size=32, scale=0.5)
    data, _ = load_dataset(config.data, config.size, native_scale=config.scale)
    stats = dataset_stats(data)
    trained = training_inputs(data, stats)
    predicted, plan = predicted_inputs(data, config, stats, images, tmp_path / "out")
    assert plan.patches == {"mode": "patches", "patch": 32, "scale": 0.5, "overlap": 0.5}
    starts = window_positions(48, 32, 0.5)  # the predictor's windows of a 48 x 48 image
    per_image = len(starts) ** 2
    files = [p.name for p in list_image_files(images)]
    row = 0
    for i in data.valid_idx:  # the validation tiles, in TilePairs' order
        k = files.index(Path(data.sources[i]).name)
        assert data.native.shape(int(i)) == (48, 48)
        for y in tile_starts(48, 32):
            for x in tile_starts(48, 32):
                window = k * per_image + starts.index(y) * len(starts) + starts.index(x)
                assert torch.equal(predicted[window], trained[row]), (data.name(i), y, x)
                row += 1
    assert row == len(trained)


def test_a_scan_run_with_context_predicts_on_what_it_trained_on(tmp_path):
    """CT scans sliced axially at 32 px, each slice with a neighbour on each side (2.5-D)."""
    root = sample_volumes(tmp_path / "scans")[0].parent
    config = TrainConfig(data=DataConfig(str(root), context=1, valid_pct=0.34), size=32)
    data, _ = load_dataset(config.data, config.size)
    stats = dataset_stats(data)
    trained = training_inputs(data, stats)
    k = data.valid_volumes()[0]
    volume = data.volumes[k]
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / Path(volume.sources[0]).name).symlink_to(volume.sources[0])
    predicted, plan = predicted_inputs(data, config, stats, folder, tmp_path / "out")
    assert plan.volumetric and plan.context == 1 and plan.modalities == ["CT"] and "/" in plan.window
    rows = {int(i): row for row, i in enumerate(data.valid_idx)}
    assert predicted.shape == (volume.n_slices, 3, 32, 32)
    for s, i in enumerate(volume.items):
        assert torch.equal(predicted[s], trained[rows[i]]), f"{volume.name} slice {s}"


@pytest.mark.parametrize("window", ["auto", "400/40"])
def test_training_caches_scan_slices_as_the_recipe_makes_them(tmp_path, window):
    """The scan cache holds, for a CT slice, what recipe.scan_input makes of the scan (the fixed
    window and the dataset's alike: resized in HU, rounded to whole HU, windowed)."""
    from segstudio.io import read_scan
    from segstudio.preprocess.plan import Plan
    from segstudio.preprocess.recipe import scan_input

    root = sample_volumes(tmp_path / "scans")[0].parent
    data, _ = load_dataset(DataConfig(str(root), window=window), 32)
    volume = data.volumes[0]
    plan = Plan(list(data.codes), 32, [0.5] * 3, [0.25] * 3, window=data.window, volumetric=True,
                modalities=["CT"])
    slices = scan_input(read_scan(volume.sources[0]), plan)
    assert np.array_equal(slices, np.asarray(data.images[volume.first:volume.first + volume.n_slices]))
