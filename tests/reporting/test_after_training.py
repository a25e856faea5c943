"""After training: the validation cases scored into the run folder (the train command), the
calibration temperature kept in model.json and applied to uncertainty and exported
probabilities, never to the masks."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.inference import Predictor
from segstudio.inference.uncertainty import with_temperature
from segstudio.reporting.after_training import boundary_scores, store_temperature
from segstudio.training import events as ev
from segstudio.training.protocols import Session
from tests.conftest import implements


def copy_run(trained_run, sample_dirs, to: Path, data: bool = True) -> Path:
    """A copy of the trained run's files, its config.json naming the sample's folders (the
    fixture's run was handed its dataset in memory), or none with `data=False`."""
    to.mkdir(parents=True)
    for f in Path(trained_run[0].run_dir).iterdir():
        if f.is_file():
            shutil.copy(f, to / f.name)
    config = json.loads((to / "config.json").read_text())
    config["data"].update(images=str(sample_dirs[0]) if data else "", masks=str(sample_dirs[1]) if data else "")
    (to / "config.json").write_text(json.dumps(config))
    return to


def train(monkeypatch, run_dir: Path, sample_dirs, tmp_path, *options) -> int:
    """`segstudio train` in this process, its session replaced by one that 'trains' `run_dir`."""
    from segstudio.cli import main as cli
    from segstudio.training import session as session_module
    from segstudio.training.distributed import Ranks

    @implements(Session)
    class Trained:
        ranks = Ranks()

        def run(self, config, on_event, dataset=None, resume=""):
            return ev.Finished(str(run_dir), 0, 0.5, 1)

        def cancel(self):
            pass

    monkeypatch.setattr(session_module, "TrainingSession", Trained)
    return cli.main(["train", "--images", str(sample_dirs[0]), "--masks", str(sample_dirs[1]), "--out",
                     str(tmp_path / "runs"), *options])


@pytest.mark.slow
def test_train_scores_the_best_models_validation_cases_into_the_run_folder(trained_run, sample_dirs, sample_data,
                                                                          tmp_path, monkeypatch, capsys):
    run = copy_run(trained_run, sample_dirs, tmp_path / "run")
    meta = json.loads((run / "model.json").read_text())
    assert train(monkeypatch, run, sample_dirs, tmp_path) == 0
    out = capsys.readouterr().out
    assert "validation: 6 validation images scored: Dice" in out and "temperature" in out
    lines = (run / "metrics_per_case.csv").read_text().splitlines()
    assert lines[0].startswith("case,class,class_name,dice,nsd,hd95")
    assert len(lines) - 1 == len(sample_data.valid_idx) * (len(sample_data.codes) - 1)
    assert (run / "summary.json").is_file()
    calibration = json.loads((run / "calibration.json").read_text())
    after = json.loads((run / "model.json").read_text())
    assert after.pop("temperature") == pytest.approx(calibration["temperature"]) and after == meta
    scores = boundary_scores(run)  # what the Review's NSD and HD95 columns show
    assert set(scores.by_case) == {sample_data.name(int(i)) for i in sample_data.valid_idx}
    assert scores.unit == "px" and scores.tolerance == 1.0


@pytest.mark.slow
def test_no_metrics_skips_the_scoring_and_a_failure_is_a_warning(trained_run, sample_dirs, tmp_path, monkeypatch,
                                                                 capsys):
    run = copy_run(trained_run, sample_dirs, tmp_path / "skipped")
    assert train(monkeypatch, run, sample_dirs, tmp_path, "--no-metrics") == 0
    assert not (run / "metrics_per_case.csv").exists() and "temperature" not in (run / "model.json").read_text()
    unknown = copy_run(trained_run, sample_dirs, tmp_path / "no data", data=False)
    assert train(monkeypatch, unknown, sample_dirs, tmp_path) == 0  # the run finished all the same
    err = capsys.readouterr().err
    assert "warning: the validation cases could not be scored" in err and "the run itself finished" in err
    assert not (unknown / "metrics_per_case.csv").exists()


def test_the_temperature_goes_into_model_json_keeping_its_other_keys(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps({"arch": "resnet18", "codes": ["background", "a"]}))
    store_temperature(tmp_path, 1.7)
    assert json.loads((tmp_path / "model.json").read_text()) == {"arch": "resnet18", "codes": ["background", "a"],
                                                                  "temperature": 1.7}
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]  # no temporary file left
    with pytest.raises(ValueError):
        store_temperature(tmp_path, 0.0)
    (tmp_path / "model.json").write_text("{broken")
    with pytest.raises(Exception, match="cannot read"):
        store_temperature(tmp_path, 1.2)
    assert (tmp_path / "model.json").read_text() == "{broken"  # left as it was


def test_a_temperature_softens_or_sharpens_without_changing_the_most_likely_class():
    p = torch.softmax(torch.randn(2, 3, 5, 7) * 4, dim=1)
    for t in (0.5, 2.0):
        q = with_temperature(p, t)
        assert torch.equal(q.argmax(dim=1), p.argmax(dim=1))
        assert torch.allclose(q.sum(dim=1), torch.ones(2, 5, 7))
    assert (with_temperature(p, 2.0).max(dim=1).values <= p.max(dim=1).values + 1e-6).all()
    assert isinstance(with_temperature(p[0].numpy(), 2.0), np.ndarray) and with_temperature(p, 1) is p


@pytest.mark.slow
def test_the_temperature_reaches_uncertainty_and_exported_probabilities_not_masks(trained_run, sample_dirs,
                                                                                   tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for f in sorted(Path(sample_dirs[0]).iterdir())[:3]:
        shutil.copy(f, images / f.name)
    run = copy_run(trained_run, sample_dirs, tmp_path / "run")
    plain = Predictor.load(run, device="cpu")
    assert plain.temperature == 1.0
    store_temperature(run, 3.0)
    warm = Predictor.load(run, device="cpu")
    assert warm.temperature == 3.0
    a = plain.predict_folder(images, tmp_path / "plain", uncertainty=True, save_probabilities=True)
    b = warm.predict_folder(images, tmp_path / "warm", uncertainty=True, save_probabilities=True)
    for mask_a, mask_b in zip(sorted(a.written), sorted(b.written)):
        assert np.array_equal(np.asarray(Image.open(mask_a)), np.asarray(Image.open(mask_b)))
        prob_a = np.load(mask_a.replace(".png", ".npz"))["probabilities"].astype(np.float32)
        prob_b = np.load(mask_b.replace(".png", ".npz"))["probabilities"].astype(np.float32)
        # softened: less confident everywhere (float16 files: the tiniest probabilities are 0 in prob_a)
        assert (prob_b.max(axis=0) <= prob_a.max(axis=0) + 2e-3).all()
        assert prob_b.max(axis=0).mean() < prob_a.max(axis=0).mean() - 0.01
        assert np.allclose(prob_b.sum(axis=0), 1, atol=5e-3)
        assert b.uncertainty[mask_b] > a.uncertainty[mask_a]  # softened: more uncertain
