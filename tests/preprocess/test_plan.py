"""The plan: model.json written from it and read back into it, old run folders (model.json
format 1) included, and the keys it does not know kept."""

import json

import numpy as np
import pytest
import torch

from segstudio.errors import SegstudioError
from segstudio.preprocess.plan import Plan, make_plan

# model.json as segstudio wrote it before the plan (format 1), with the keys others add to it
OLD_2D = {"format": 1, "segstudio": "0.1.0", "arch": "resnet18", "n_in": 3, "n_out": 3,
          "codes": ["background", "liver", "kidney"], "size": 32, "mean": [0.2, 0.2, 0.2], "std": [0.3, 0.3, 0.3],
          "window": "411.6/51.5", "pretrained": False, "channels": 1, "norm": "instance", "epoch": 3,
          "dice_mean": 0.71, "temperature": 1.37, "distributed": {"world_size": 2}}
OLD_PATCHES = {**OLD_2D, "input": {"mode": "patches", "patch": 32, "scale": 0.5, "overlap": 0.5}}
OLD_SCANS = {**OLD_2D, "n_in": 3, "parent": "/runs/first",
             "volumes": {"axis": "coronal", "context": 1, "channels": 1, "modalities": ["CT"]}}


@pytest.mark.parametrize("meta", [OLD_2D, OLD_PATCHES, OLD_SCANS], ids=["2d", "patches", "scans"])
def test_a_format_1_model_json_reads_and_writes_back_unchanged(meta):
    plan = Plan.from_meta(json.loads(json.dumps(meta)))
    assert plan.to_meta() == meta
    assert plan.extra == {"epoch": 3, "dice_mean": 0.71, "temperature": 1.37, "distributed": {"world_size": 2}}
    assert (plan.arch, plan.size, plan.norm, plan.window, plan.n_out) == ("resnet18", 32, "instance", "411.6/51.5", 3)


def test_the_plan_reads_the_input_and_the_slicing():
    patches, scans = Plan.from_meta(OLD_PATCHES), Plan.from_meta(OLD_SCANS)
    assert patches.patches == OLD_PATCHES["input"] and patches.image_shape((300, 101)) == (150, 50)
    assert Plan.from_meta(OLD_2D).patches is None and Plan.from_meta(OLD_2D).image_shape((300, 101)) == (32, 32)
    assert (scans.volumetric, scans.slice_axis, scans.context, scans.modalities) == (True, 1, 1, ["CT"])
    assert scans.parent == "/runs/first"


def test_a_model_json_it_cannot_read_is_a_clear_error():
    with pytest.raises(SegstudioError, match="newer"):
        Plan.from_meta({**OLD_2D, "format": 2})
    with pytest.raises(SegstudioError, match="cannot be read"):
        Plan.from_meta({"format": 1, "arch": "resnet18"})


def test_an_old_run_folder_opens_and_predicts(tmp_path):
    """A run folder from before the plan: model.json format 1 written by hand beside the weights
    of a freshly built model; the predictor builds the same network and predicts with it."""
    from fastai.vision.learner import create_unet_model
    from torchvision.models import resnet18

    from segstudio.inference import Predictor
    from segstudio.runs import MODEL_FILE, MODEL_META
    from segstudio.model.norms import to_instance_norm

    meta = {**OLD_2D, "size": 64}  # instance norm needs 64 px
    torch.manual_seed(0)
    model = create_unet_model(resnet18, 3, (64, 64), pretrained=False, n_in=3)
    to_instance_norm(model)
    torch.save(model.state_dict(), tmp_path / MODEL_FILE)
    (tmp_path / MODEL_META).write_text(json.dumps(meta), encoding="utf-8")
    predictor = Predictor.load(tmp_path, device="cpu")
    assert predictor.plan == Plan.from_meta(meta) and predictor.meta == meta
    hu = (np.arange(50 * 40, dtype=np.int16).reshape(50, 40) - 1000).astype(np.int16)
    probs = predictor.probabilities(hu)
    assert probs.shape == (3, 50, 40) and np.allclose(probs.sum(axis=0), 1, atol=1e-4)
    x = (torch.from_numpy(predictor.prepare(hu)).float()[None] / 255).repeat(1, 3, 1, 1)
    expected = torch.softmax(model.eval()((x - 0.2) / 0.3), dim=1)
    resized = torch.nn.functional.interpolate(expected, size=(50, 40), mode="bilinear", align_corners=False)[0]
    assert np.abs(probs - resized.detach().numpy()).max() < 1e-5


def test_make_plan_writes_what_model_json_held(sample_data):
    """A 2-D run's model.json has the format-1 keys and values the model_meta of before wrote,
    and the mask reading it decided."""
    from segstudio.config import TrainConfig

    data = sample_data
    plan = make_plan(TrainConfig(size=data.size), data, pretrained=False, norm="batch",
                     stats=([0.1] * 3, [0.2] * 3), head=0)
    meta = plan.to_meta()
    before = {"format": 1, "arch": "resnet18", "n_in": 3, "n_out": len(data.codes), "codes": list(data.codes),
              "size": data.size, "mean": [0.1] * 3, "std": [0.2] * 3, "window": data.window, "pretrained": False,
              "channels": 1}
    assert {k: meta[k] for k in before} == before
    assert meta["labels"] == data.labels and meta["class_keys"] == data.class_keys
    assert not {"norm", "head", "input", "volumes", "parent"} & set(meta)
    assert Plan.from_meta(json.loads(json.dumps(meta))) == plan


def test_the_learners_slim_head_is_recorded_and_rebuilt(sample_data):
    """A new run's U-Net has the narrow full-resolution head; its model.json says so, and the
    network the predictor builds from it takes the trained weights key for key, shape for shape.
    An old model.json (no head) still builds fastai's full-width block."""
    from fastai.layers import ResBlock

    from segstudio.config import TrainConfig
    from segstudio.model.unet import HEAD_WIDTH, build_unet
    from segstudio.training.learner import build_learner

    built = build_learner(TrainConfig(size=sample_data.size, pretrained=False), sample_data, torch.device("cpu"))
    assert built.head == HEAD_WIDTH
    meta = make_plan(TrainConfig(size=sample_data.size), sample_data, pretrained=False, norm=built.norm,
                     stats=built.stats, head=built.head).to_meta()
    assert meta["head"] == HEAD_WIDTH
    trained = built.learn.model.state_dict()
    rebuilt = build_unet(Plan.from_meta(json.loads(json.dumps(meta)))).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in trained.items()}
    blocks = [m for m in built.learn.model.modules() if isinstance(m, ResBlock)]
    assert blocks[-1].convpath[-1][0].out_channels == HEAD_WIDTH
    weight = blocks[-1].convpath[0][0].weight  # kaiming normal, as DynamicUnet starts its own block
    kaiming = (2 / weight[0].numel()) ** 0.5  # PyTorch's default would be 0.41 of it
    assert abs(float(weight.std()) - kaiming) < 0.15 * kaiming
    old = build_unet(Plan.from_meta({k: v for k, v in meta.items() if k != "head"}))
    old_widths = [m.convpath[-1][0].out_channels for m in old.modules() if isinstance(m, ResBlock)]
    assert old_widths[-1] > HEAD_WIDTH and old_widths[-1] == meta["n_in"] + 96
