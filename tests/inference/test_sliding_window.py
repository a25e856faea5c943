"""Sliding-window prediction at full resolution (runs trained on patches): window positions and
weights, the predictor's stitched path (Predictor.stream: stitch + Tiled) against whole-image and
hand-computed results, the predictor on a patch run (probabilities, predict_folder, review) and an
ONNX export of such a run."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.inference import Predictor
from segstudio.inference.sliding_window import gaussian_weights, window_positions
from segstudio.inference.uncertainty import with_flip
from segstudio.model.backends import TorchBackend

S = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small forward passes: one thread is as fast on 2 cores, and far faster when other
    processes hold the cores (OpenMP threads then wait on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pointwise(x: torch.Tensor) -> torch.Tensor:
    """Logits of 3 classes, a per-pixel function of the input: stitching must reproduce it."""
    a, b = x[:, 0], x[:, -1]
    return torch.stack([a * 3, b * b - a, torch.sin(5 * a) + b], dim=1)


def positional(x: torch.Tensor) -> torch.Tensor:
    """Logits of 2 classes that depend on where a pixel is in its window and on the whole window."""
    ramp = torch.linspace(0, 1, x.shape[-1], device=x.device)
    p = x[:, :1] * ramp + x.mean(dim=(1, 2, 3), keepdim=True)
    return torch.cat([3 * p, -p], dim=1)


def probabilities(logits):
    return lambda x: torch.softmax(logits(x), dim=1)


class Logits(torch.nn.Module):
    """A stand-in model computing `fn`."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def patch_predictor_of(logits, n_in: int, n_out: int, overlap: float = 0.5) -> Predictor:
    """A predictor of a run trained on S x S patches whose model computes `logits` (mean 0 and
    std 1: the model sees the 0..1 image as it comes)."""
    meta = {"format": 1, "n_in": n_in, "n_out": n_out, "codes": [f"c{k}" for k in range(n_out)], "size": S,
            "mean": [0.0] * n_in, "std": [1.0] * n_in, "window": "auto",
            "input": {"mode": "patches", "patch": S, "scale": 1.0, "overlap": overlap}}
    return Predictor(TorchBackend(Logits(logits), meta, torch.device("cpu")))


def stitched(logits, img: np.ndarray, batch: int, flip: bool = False) -> np.ndarray:
    """(C, H, W) uint8 -> (K, H, W) probabilities through the predictor's stitched path, `batch`
    windows per forward pass."""
    n_out = logits(torch.zeros(1, img.shape[0], S, S)).shape[1]
    p = patch_predictor_of(logits, img.shape[0], n_out)
    (payload, probs), = p.stream([("one", img.shape[1:], img)], flip=flip, batch=batch)
    assert payload == "one" and isinstance(probs, torch.Tensor) and probs.device == p.device
    return probs.numpy()


def naive(fn, image: np.ndarray, size: int, overlap: float, weights: torch.Tensor | None = None) -> np.ndarray:
    """The stitching written out window by window (reference for the batched implementation);
    `fn` maps windows to probabilities."""
    x = torch.from_numpy(image).float() / 255
    c, h, w = x.shape
    padded = torch.zeros(c, max(h, size), max(w, size))
    padded[:, :h, :w] = x
    g = gaussian_weights(size) if weights is None else weights
    acc, norm = None, torch.zeros(padded.shape[1:])
    for y in window_positions(h, size, overlap):
        for x0 in window_positions(w, size, overlap):
            p = fn(padded[None, :, y:y + size, x0:x0 + size])[0]
            acc = torch.zeros(p.shape[0], *padded.shape[1:]) if acc is None else acc
            acc[:, y:y + size, x0:x0 + size] += p * g
            norm[y:y + size, x0:x0 + size] += g
    return (acc / norm)[:, :h, :w].numpy()


def image(h: int, w: int, c: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (c, h, w), dtype=np.uint8)


@pytest.mark.parametrize("length", [S, S + 1, 2 * S - 1, 97, 300, 501, 5])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 0.75])
def test_windows_cover_the_image_exactly(length, overlap):
    starts = window_positions(length, S, overlap)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert starts[-1] == max(length - S, 0)  # flush with the end (or padded when shorter)
    steps = np.diff(starts)
    assert all(0 < s <= round(S * (1 - overlap)) for s in steps)
    covered = np.zeros(max(length, S), bool)
    for s in starts:
        covered[s:s + S] = True
    assert covered[:length].all() and len(covered) == max(length, S)


def test_positions_by_hand():
    assert window_positions(S, S, 0.5) == [0]
    assert window_positions(10, S, 0.5) == [0]
    assert window_positions(100, S, 0.5) == [0, 16, 32, 48, 64, 68]
    with pytest.raises(ValueError):
        window_positions(100, S, 1.0)


@pytest.mark.parametrize("size", [32, 33, 64])
def test_gaussian_weights_symmetric_max_one_positive(size):
    g = gaussian_weights(size)
    assert g.shape == (size, size) and g.dtype == torch.float32
    assert torch.isclose(g.max(), torch.tensor(1.0)) and g.min() > 0
    assert torch.equal(g, g.T) and torch.equal(g, g.flip(0)) and torch.equal(g, g.flip(1))
    assert g[size // 2, size // 2] > 10 * g[0, size // 2]  # the centre counts far more than the edge


@pytest.mark.parametrize("shape", [(70, 131), (45, 33), (20, 50), (S, S), (17, 9)])
@pytest.mark.parametrize("channels", [1, 3])
def test_pointwise_model_stitches_to_the_whole_image_result(shape, channels):
    img = image(*shape, c=channels)
    whole = probabilities(pointwise)(torch.from_numpy(img)[None].float() / 255)[0].numpy()
    got = stitched(pointwise, img, batch=4)
    assert got.dtype == np.float32 and got.shape == (3, *shape)
    assert np.abs(got - whole).max() < 1e-5


@pytest.mark.parametrize("shape", [(83, 121), (20, 50)])  # the second padded with zeros, as in training
def test_stitching_matches_the_window_by_window_reference(shape):
    img = image(*shape)
    got = stitched(positional, img, batch=3)
    assert np.abs(got - naive(probabilities(positional), img, S, 0.5)).max() < 1e-5
    # the Gaussian weights matter: plain averaging would give something else
    assert np.abs(got - naive(probabilities(positional), img, S, 0.5, weights=torch.ones(S, S))).max() > 1e-3


def test_batch_sizes_give_identical_results():
    img = image(90, 150, c=3)
    assert np.array_equal(stitched(positional, img, batch=1), stitched(positional, img, batch=5))


def test_flip_averages_each_window_with_its_mirror_image():
    img = image(70, 101)
    flipped = stitched(positional, img, batch=4, flip=True)
    expected = naive(lambda x: with_flip(probabilities(positional), x), img, S, 0.5)
    assert np.abs(flipped - expected).max() < 1e-5
    assert np.abs(flipped - stitched(positional, img, batch=4)).max() > 1e-3
    # a per-pixel model is its own mirror image: flipping changes nothing
    same = stitched(pointwise, img, batch=4, flip=True)
    assert np.abs(same - stitched(pointwise, img, batch=4)).max() < 1e-5


def test_windows_of_several_images_share_a_forward_pass_and_come_back_in_order():
    p = patch_predictor_of(positional, 1, 2)
    images = [image(40, 70, seed=1), image(20, 20, seed=2), image(100, 33, seed=3)]
    entries = [(k, img.shape[1:], img) for k, img in enumerate(images)]
    together = list(p.stream(entries, batch=7))
    assert [k for k, _ in together] == [0, 1, 2]
    for (k, probs), img in zip(together, images):
        assert probs.shape == (2, *img.shape[1:])
        assert np.abs(probs.numpy() - naive(probabilities(positional), img, S, 0.5)).max() < 1e-5


# --- the predictor -------------------------------------------------------------------------------

PATCH = 64


def write_run(run: Path, patches: dict | None, n_in: int = 3, window: str = "auto") -> Path:
    from fastai.vision.learner import create_unet_model
    from torchvision.models import resnet18

    from segstudio.runs import save_model

    torch.manual_seed(0)
    model = create_unet_model(resnet18, 3, (PATCH, PATCH), pretrained=False, n_in=n_in)
    run.mkdir(parents=True, exist_ok=True)
    meta = {"format": 1, "arch": "resnet18", "n_in": n_in, "n_out": 3, "codes": ["background", "a", "b"],
            "size": PATCH, "mean": [0.5] * n_in, "std": [0.25] * n_in, "window": window, "pretrained": False}
    if patches is not None:
        meta["input"] = patches
    save_model(run, model.state_dict(), meta)
    return run


@pytest.fixture(scope="module")
def patch_run(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("patch-run") / "run",
                     {"mode": "patches", "patch": PATCH, "scale": 1.0, "overlap": 0.5})


@pytest.fixture(scope="module")
def patch_predictor(patch_run):
    return Predictor.load(patch_run, device="cpu")


def smooth(h: int, w: int, seed: int = 0, colour: bool = False) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 255, (8, 8, 3) if colour else (8, 8), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


@pytest.mark.slow
def test_patch_run_predicts_at_full_size_with_the_sliding_window(patch_predictor):
    p = patch_predictor
    assert p.patches is not None
    mask = p.predict(smooth(300, 500))
    assert mask.shape == (300, 500) and mask.dtype == np.uint8 and mask.max() < 3
    img = smooth(100, 150, seed=1)  # 3 x 4 windows (the forward pass is the whole cost)
    probs = p.probabilities(img)
    expected = naive(p.engine.probabilities, np.repeat(img[None], 3, axis=0), PATCH, 0.5)
    assert probs.shape == (3, 100, 150) and np.abs(probs - expected).max() < 1e-5
    # not the whole image squeezed to 64 x 64
    plan, p.plan = p.plan, replace(p.plan, input_mode="resize")
    try:
        assert np.abs(p.probabilities(img) - probs).max() > 1e-3
    finally:
        p.plan = plan


@pytest.mark.slow
def test_scale_is_applied_before_the_windows(patch_predictor):
    p = patch_predictor
    img = smooth(150, 90, seed=2, colour=True)
    plan, p.plan = p.plan, replace(p.plan, scale=0.5)
    try:
        probs = p.probabilities(img)
    finally:
        p.plan = plan
    half = np.asarray(Image.fromarray(img).resize((45, 75), Image.BILINEAR)).transpose(2, 0, 1)
    small = naive(p.engine.probabilities, half, PATCH, 0.5)
    back = torch.nn.functional.interpolate(torch.from_numpy(small)[None], size=(150, 90), mode="bilinear",
                                           align_corners=False)[0].numpy()
    assert probs.shape == (3, 150, 90) and np.abs(probs - back).max() < 1e-5


@pytest.mark.slow
def test_ct_in_hu_is_scaled_then_windowed(tmp_path):
    run = write_run(tmp_path / "ct", {"mode": "patches", "patch": PATCH, "scale": 0.5, "overlap": 0.5},
                    n_in=1, window="400/40")
    p = Predictor.load(run, device="cpu")
    hu = (smooth(100, 70).astype(np.int16) * 4 - 300).astype(np.int16)
    x = p.prepare(hu)
    assert x.dtype == np.uint8 and x.shape == (1, 50, 35)
    from segstudio.preprocess.slicing import resize_image
    from segstudio.preprocess.windowing import apply_window

    assert np.array_equal(x, apply_window(resize_image(hu, (50, 35)), 400, 40))
    assert p.predict(hu).shape == (100, 70)


@pytest.mark.slow
def test_predict_folder_writes_full_size_masks_with_any_batch(patch_predictor, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shapes = {"big.png": (100, 170), "small.png": (40, 50), "tall.png": (130, 70)}
    images = {}
    for k, (name, (h, w)) in enumerate(shapes.items()):
        images[name] = smooth(h, w, seed=k, colour=k == 1)
        Image.fromarray(images[name]).save(folder / name)
    reports = {}
    for batch in (1, 5):  # windows of one image, and of several images, per forward pass
        patch_predictor.batch_size = batch
        try:
            reports[batch] = patch_predictor.predict_folder(folder, tmp_path / f"out{batch}", save_probabilities=True)
        finally:
            patch_predictor.batch_size = 1
        assert sorted(Path(w).name for w in reports[batch].written) == sorted(shapes)
    for name, img in images.items():
        one, five = (np.asarray(Image.open(tmp_path / f"out{b}" / name)) for b in (1, 5))
        assert one.shape == five.shape == shapes[name]
        assert np.array_equal(one, patch_predictor.predict(img))
        assert np.mean(one == five) > 0.999  # batched convolutions differ in the last bits only
    probs = np.load(tmp_path / "out5" / "big.npz")["probabilities"]
    assert probs.shape == (3, 100, 170)


@pytest.mark.slow
def test_review_of_a_patch_run_is_at_full_size(tmp_path, sample_data):
    from segstudio.inference import review_items
    from segstudio.training.metrics import dice_per_class

    run = write_run(tmp_path / "run", {"mode": "patches", "patch": PATCH, "scale": 1.0, "overlap": 0.5},
                    n_in=sample_data.n_channels, window=sample_data.window)
    p = Predictor.load(run, device="cpu")
    idx = sample_data.valid_idx[:3]
    items = review_items(p, sample_data, idx, batch_size=4)
    assert sorted(it.index for it in items) == sorted(int(i) for i in idx)
    for it in items:
        h, w = sample_data.orig_sizes[it.index]
        assert (h, w) != (sample_data.size, sample_data.size)  # the sample is 128 px, cached at 64
        assert it.pred.shape == it.target.shape == it.image.shape[:2] == it.uncertainty_map.shape == (h, w)
        truth = np.asarray(Image.open(it.mask_file))  # the sample's masks hold class indices
        assert np.array_equal(it.target, truth)
        assert np.allclose(it.dice, dice_per_class(it.pred, truth, len(sample_data.codes)), equal_nan=True)
        from segstudio.io.registry import read_image
        from segstudio.preprocess.windowing import parse_window

        hu = read_image(Path(it.source), parse_window(p.window), defer_ct=True).frames[it.frame]
        assert np.array_equal(it.pred, p.predict(hu))


@pytest.mark.slow
def test_review_takes_the_dataset_s_native_images_when_it_kept_them(tmp_path, sample_data):
    import copy
    from types import SimpleNamespace

    from segstudio.inference import review_items

    run = write_run(tmp_path / "run", {"mode": "patches", "patch": PATCH, "scale": 1.0, "overlap": 0.5},
                    n_in=sample_data.n_channels, window=sample_data.window)
    i = int(sample_data.valid_idx[0])
    h, w = sample_data.orig_sizes[i]
    images = {i: np.full((1, h, w), 100, np.uint8)}
    masks = {i: np.full((h, w), 1, np.uint8)}
    data = copy.copy(sample_data)
    data.native = SimpleNamespace(scale=1.0, images=images, masks=masks, shape=lambda k: masks[k].shape)
    it, = review_items(Predictor.load(run, device="cpu"), data, [i])
    assert np.array_equal(it.target, masks[i]) and np.array_equal(it.image, images[i][0])


# --- export --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_onnx_export_of_a_patch_run_predicts_like_pytorch(patch_run, tmp_path):
    from segstudio.cli.main import main
    from segstudio.inference.export import export_model
    from segstudio.model.onnx import read_onnx_meta

    report = export_model(patch_run, "onnx", tmp_path / "model.onnx")
    meta = read_onnx_meta(report.path)
    assert meta["input"] == {"mode": "patches", "patch": PATCH, "scale": 1.0, "overlap": 0.5}
    window = meta["exported"]["sliding_window"]
    assert window["patch"] == PATCH and window["overlap"] == 0.5 and window["weights"] == "gaussian"
    assert "windows every 32 pixels" in meta["exported"]["resize"]
    images = tmp_path / "images"
    images.mkdir()
    for k, (h, w) in enumerate([(100, 170), (50, 90)]):
        Image.fromarray(smooth(h, w, seed=k, colour=k == 1)).save(images / f"im{k}.png")
    assert main(["predict", "--model", str(patch_run), "--images", str(images), "--out", str(tmp_path / "torch"),
                 "--device", "cpu"]) == 0
    code = ("import sys; sys.modules['fastai'] = None\n"
            "from segstudio.cli.main import main\n"
            f"sys.exit(main(['predict', '--model', {report.path!r}, '--images', {str(images)!r}, "
            f"'--out', {str(tmp_path / 'onnx')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name, shape in [("im0.png", (100, 170)), ("im1.png", (50, 90))]:
        a = np.asarray(Image.open(tmp_path / "torch" / name))
        b = np.asarray(Image.open(tmp_path / "onnx" / name))
        assert a.shape == b.shape == shape
        assert np.mean(a == b) > 0.999
    assert Predictor.load(report.path).patches == meta["input"]


def test_whole_image_runs_keep_their_export_description():
    from segstudio.inference.export import exported_meta

    meta = {"n_in": 3, "size": 64, "codes": ["a", "b"]}
    assert "sliding_window" not in exported_meta(meta)["exported"]
    assert "sliding_window" not in exported_meta({**meta, "input": {"mode": "resize"}})["exported"]
    assert json.dumps(exported_meta(meta))  # plain JSON, as the file's metadata
