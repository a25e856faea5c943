"""segstudio report: one self-contained HTML page about a run, and the validation scoring behind it."""

import base64
import io
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from segstudio.io import Volume
from segstudio.errors import SegstudioError
from segstudio.preprocess.plan import Plan
from segstudio.reporting import gather, render, score_validation, write_run_report, write_validation
from segstudio.reporting.validation import CALIBRATION_NAME, _scan_planes, case_means, read_calibration, read_rows

ROW = re.compile(r'<tr><td class="n">(\d+)</td><td>([^<]*)</td><td class="n"[^>]*>([^<]*)</td>')


@pytest.fixture(scope="module")
def run_dir(trained_run, sample_dirs, tmp_path_factory):
    """A copy of the trained run, its config.json naming the data folders (the fixture's run was
    handed its dataset in memory)."""
    run = copy_run(Path(trained_run[0].run_dir), tmp_path_factory.mktemp("report") / "run")
    config = json.loads((run / "config.json").read_text())
    config["data"].update(images=str(sample_dirs[0]), masks=str(sample_dirs[1]))
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.fixture(scope="module")
def scores(run_dir):
    return score_validation(run_dir)


def copy_run(run_dir: Path, to: Path, leave_out=()) -> Path:
    to.mkdir()
    for f in run_dir.iterdir():
        if f.is_file() and f.name not in leave_out:
            shutil.copy(f, to / f.name)
    return to


def test_the_report_is_one_page_with_every_validation_case_worst_first(run_dir, sample_data, tmp_path):
    out = tmp_path / "shared" / "report.html"
    assert write_run_report(run_dir, out, device="cpu") == out
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # nothing beside it
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page.lower() and 'src="http' not in page and "href=" not in page
    assert "url(" not in page and "@import" not in page  # no outside stylesheets or fonts either
    pictures = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    # learning curves, the 3 worst and 3 best of 6 cases, the reliability diagram
    assert len(pictures) == 1 + 6 + 1
    assert all(Image.open(io.BytesIO(base64.b64decode(p))).format == "PNG" for p in pictures)
    rows = ROW.findall(page)
    names = [name for _, name, _ in rows]
    assert sorted(names) == sorted(sample_data.name(int(i)) for i in sample_data.valid_idx)
    means = [float(d) for _, _, d in rows if d[0].isdigit()]
    assert means == sorted(means) and [int(n) for n, _, _ in rows] == list(range(1, len(rows) + 1))
    for text in ("Learning curves", "Calibration", "ECE", "PyTorch", "fastai", "Python", "Trained on", "liver",
                 "by patient"):
        assert text in page
    assert "Not in this report" not in page


def test_a_file_the_report_did_not_write_is_left_alone(run_dir, tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>")
    with pytest.raises(SegstudioError, match="not a report segstudio wrote"):
        write_run_report(run_dir, mine)
    assert mine.read_text() == "<p>my notes</p>"


def test_scores_per_case_and_class_with_calibration(scores, sample_data):
    n_valid, n_fg = len(sample_data.valid_idx), len(sample_data.codes) - 1
    assert len(scores.rows) == n_valid * n_fg and not scores.problems
    assert {r.distance_unit for r in scores.rows} == {"px"}  # each image at its own size (128 px)
    assert all(0 <= r.dice <= 1 for r in scores.rows if r.dice == r.dice)
    worst_first = list(case_means(scores.rows).values())
    assert [v.dice_mean for v in scores.worst] == worst_first[:3]
    assert [v.dice_mean for v in scores.best] == worst_first[::-1][:3]
    assert scores.worst[0].planes[0].truth.shape == (128, 128)
    c = scores.calibration
    assert c.samples == n_valid * 128 * 128 and c.temperature > 0
    assert 0 <= c.after.ece <= c.before.ece + 1e-3  # fitted on these pixels: not worse


def test_scores_written_to_the_run_folder_are_read_back(run_dir, scores, tmp_path):
    run = copy_run(run_dir, tmp_path / "run")
    write_validation(run, scores)
    back = read_rows(run / "metrics_per_case.csv")
    assert [(r.case, r.label, r.empty) for r in back] == [(r.case, r.label, r.empty) for r in scores.rows]
    assert np.allclose([r.hd95 for r in back], [r.hd95 for r in scores.rows], rtol=1e-5, equal_nan=True)
    assert read_calibration(run / CALIBRATION_NAME).temperature == pytest.approx(scores.calibration.temperature)
    report = gather(run, device="cpu")
    assert report.rows_from.startswith("read from metrics_per_case.csv")
    assert report.calibration_from.startswith(CALIBRATION_NAME)
    assert len(report.scores.worst) + len(report.scores.best) == 6  # predicted for the pictures only


def test_a_run_without_metrics_says_what_is_missing(run_dir, tmp_path):
    run = copy_run(run_dir, tmp_path / "old", leave_out=("metrics.json", "metrics.csv", "events.jsonl"))
    page = render(gather(run, predict=False))
    missing = page[page.index("Not in this report"):page.index("<h2>Data")]
    for text in ("metrics.json", "events.jsonl", "Per-case metrics", "Pictures", "Calibration"):
        assert text in missing
    assert "No learning curves" in page and "No per-case metrics" in page
    assert "data:image/png" not in page


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(SegstudioError, match="not a segstudio run folder"):
        gather(tmp_path)
    with pytest.raises(SegstudioError, match="not found"):
        gather(tmp_path / "nowhere")


def test_the_command_says_why_it_wrote_nothing(tmp_path, capsys):
    import argparse

    from segstudio.cli import report as cli_report

    parser = argparse.ArgumentParser()
    cli_report.add_parser(parser.add_subparsers())
    assert cli_report.run(parser.parse_args(["report", str(tmp_path), "--out", str(tmp_path / "r.html")])) == 1
    assert "not a segstudio run folder" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_scan_planes_cross_the_structure_at_the_scans_proportions():
    """A (Z, Y, X) = (10, 40, 30) scan of 3 x 0.5 x 1 mm voxels: the planes cross the centre of
    class 2 (not of class 1, far away), each with its pixels' height over width."""
    image = np.zeros((10, 40, 30), np.float32)
    truth = np.zeros((10, 40, 30), np.uint8)
    truth[1:3, 2:6, 2:6] = 1
    truth[6:9, 20:31, 10:21] = 2  # centre (7, 25, 15)
    volume = Volume(image, np.eye(4), (3.0, 0.5, 1.0))
    predictor = SimpleNamespace(plan=Plan(["background", "a", "b"], 32, [0.5] * 3, [0.25] * 3))
    axial, coronal, sagittal = _scan_planes(volume, truth, truth, predictor, focus=2)
    assert [p.title for p in (axial, coronal, sagittal)] == ["axial", "coronal", "sagittal"]
    assert axial.truth.shape == (40, 30) and (axial.truth == 2).sum() == 11 * 11  # slice z = 7
    assert coronal.truth.shape == (10, 30) and (coronal.truth == 2).sum() == 3 * 11
    assert sagittal.truth.shape == (10, 40) and (sagittal.truth == 2).sum() == 3 * 11
    assert (axial.aspect, coronal.aspect, sagittal.aspect) == (0.5, 3.0, 6.0)


def test_a_scan_is_scored_as_predict_volume_predicts_it_with_every_slice_sampled(tmp_path, monkeypatch):
    """The scorer predicts a scan with inference.volumes.predict_volume (one slice loop) and
    samples each slice's probabilities for calibration, an equal share of the scan's."""
    import torch

    from segstudio.config import DataConfig
    from segstudio.data import load_dataset
    from segstudio.data.sample_volumes import sample_volumes
    from segstudio.reporting import validation
    from segstudio.training.metrics import dice_per_class

    class Brightness:  # foreground probabilities grow with the pixel's grey level
        plan = Plan.from_meta({"window": "auto", "n_in": 3, "codes": ["background", "liver", "kidney"],
                               "size": 16, "volumes": {"modalities": ["CT"]}})
        tta = False

        def probabilities_resized(self, batch, flip=False):
            x = torch.from_numpy(batch.astype(np.float32))[:, :1] / 255
            return torch.cat([1 - x, x * 0.6, x * 0.4], dim=1)

    data, _ = load_dataset(DataConfig(str(sample_volumes(tmp_path / "scans")[0].parent)), 16)
    case = data.volumes[data.valid_volumes()[0]]
    predicted, sliced = [], []

    def predict_volume(predictor, volume, should_stop=None, probabilities=None, on_slice=None):
        def hook(k, probs):
            sliced.append(k)
            on_slice(k, probs)
        predicted.append(real(predictor, volume, should_stop, probabilities, hook))
        return predicted[-1]

    real = validation.predict_volume
    monkeypatch.setattr(validation, "predict_volume", predict_volume)
    scores = score_validation(tmp_path, predictor=Brightness(), dataset=data, keep=0, cases={case.name})
    [labels] = predicted
    n, pixels = labels.shape[0], labels.shape[1] * labels.shape[2]
    assert sliced == list(range(n))
    assert scores.calibration.samples == n * min(pixels, round(validation.SAMPLES_PER_CASE / n))
    image = validation.read_scan(case.sources[0])
    label = validation.read_label(validation.Case(case.name, [Path(case.sources[0])], Path(case.label)), image, data.codes)
    truth = validation.class_indices(label.array, data.class_keys, 3, False, volume=True)
    dice = dice_per_class(labels, truth, 3)
    assert [r.dice for r in scores.rows] == pytest.approx(dice[1:], nan_ok=True)
