"""Scoring predictions against ground truth: metrics against DeepMind's surface-distance, the
empty-class rules, pairing folders of masks in any orientation, and the files written."""

from __future__ import annotations

import argparse
import csv
import json
import math

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from segstudio.errors import Cancelled, DataError
from segstudio.evaluation import evaluate as ev
from segstudio.evaluation.evaluate import CSV_NAME, SUMMARY_NAME, evaluate_folders
from segstudio.evaluation.surface import (average_surface_distance, binary_metrics, label_metrics, robust_hausdorff,
                                          surface_dice, surface_distances)
from segstudio.evaluation.surfel_table import contour_lengths, surface_areas

sd = pytest.importorskip("surface_distance")  # DeepMind's reference (a test dependency)

def _blobs(shape, rng, n=3) -> np.ndarray:
    """A union of `n` random ellipsoids (ellipses in 2-D)."""
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    mask = np.zeros(shape, bool)
    for _ in range(n):
        centre = [rng.uniform(0, s) for s in shape]
        radii = [rng.uniform(1.5, max(2.0, s / 3)) for s in shape]
        mask |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    return mask


def _reference(truth, pred, spacing, tolerance):
    dist = sd.compute_surface_distances(truth, pred, spacing)
    to_pred, to_truth = sd.compute_average_surface_distance(dist)
    a_t, a_p = dist["surfel_areas_gt"].sum(), dist["surfel_areas_pred"].sum()
    return dist, dict(dice=sd.compute_dice_coefficient(truth, pred),
                      nsd=sd.compute_surface_dice_at_tolerance(dist, tolerance),
                      hd95=sd.compute_robust_hausdorff(dist, 95),
                      assd=(to_pred * a_t + to_truth * a_p) / (a_t + a_p))


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.7), (0.5, 1.3, 3.0), (3.0, 0.8)])
def test_metrics_match_surface_distance(spacing):
    """Same distances, areas, NSD, HD95, ASSD and Dice as DeepMind's package, on anisotropic 3-D
    (and 2-D) masks: overlapping blobs, a one-voxel shell with noise, a far-off stray blob."""
    rng = np.random.default_rng(len(spacing) * 100 + int(sum(spacing) * 10))
    shape = (18, 30, 26)[:len(spacing)]
    for trial in range(6):
        truth = _blobs(shape, rng)
        pred = _blobs(shape, rng) if trial % 2 else ndimage.binary_dilation(truth) ^ (rng.random(shape) < 0.03)
        if trial == 4:
            pred = truth.copy()
            pred[(0,) * len(shape)] = True  # a stray voxel in a corner: HD95 stays, HD would not
        if not truth.any() or not pred.any():
            continue
        for tolerance in (0.5, 1.0, 2.0, 3.0):
            dist, ref = _reference(truth, pred, spacing, tolerance)
            mine = surface_distances(truth, pred, spacing)
            np.testing.assert_allclose(mine.truth_to_pred, dist["distances_gt_to_pred"], rtol=0, atol=1e-12)
            np.testing.assert_allclose(mine.pred_to_truth, dist["distances_pred_to_gt"], rtol=0, atol=1e-12)
            np.testing.assert_allclose(mine.truth_areas.sum(), dist["surfel_areas_gt"].sum(), rtol=1e-12)
            assert surface_dice(mine, tolerance) == pytest.approx(ref["nsd"], abs=1e-12)
            assert robust_hausdorff(mine, 95) == pytest.approx(ref["hd95"], abs=1e-12)
            assert average_surface_distance(mine) == pytest.approx(ref["assd"], rel=1e-12)
            m = binary_metrics(truth, pred, spacing, tolerance)
            assert (m.dice, m.nsd, m.hd95) == pytest.approx((ref["dice"], ref["nsd"], ref["hd95"]), abs=1e-12)


def test_surfel_tables_are_surface_distances():
    from surface_distance import lookup_tables

    for spacing in [(1, 1, 1), (2.5, 0.7, 0.7), (0.3, 1.1, 3.0)]:
        np.testing.assert_array_equal(surface_areas(spacing),
                                      lookup_tables.create_table_neighbour_code_to_surface_area(spacing))
    for spacing in [(1, 1), (0.7, 2.0)]:
        np.testing.assert_array_equal(contour_lengths(spacing),
                                      lookup_tables.create_table_neighbour_code_to_contour_length(spacing))


def test_known_values_of_a_shifted_cube():
    """A 4x4x4 cube and the same cube one 2-mm slice further: Dice 3/4, every distance 0 or 2 mm."""
    truth = np.zeros((8, 8, 8), bool)
    truth[2:6, 2:6, 2:6] = True
    pred = np.roll(truth, 1, axis=0)
    m = binary_metrics(truth, pred, (2.0, 1.0, 1.0), tolerance_mm=1.0)
    assert m.dice == 0.75 and m.hd95 == 2.0 and 0 < m.assd < 2.0 and 0 < m.nsd < 1
    assert binary_metrics(truth, pred, (2.0, 1.0, 1.0), tolerance_mm=2.0).nsd == 1.0


def test_empty_class_rules():
    full, empty = np.ones((4, 5, 6), bool), np.zeros((4, 5, 6), bool)
    both = binary_metrics(empty, empty, (1, 1, 1))
    assert all(math.isnan(v) for v in (both.dice, both.nsd, both.hd95, both.assd)) and both.empty == "both"
    for truth, pred, where in ((full, empty, "prediction"), (empty, full, "truth")):
        m = binary_metrics(truth, pred, (2, 1, 1))
        assert (m.dice, m.nsd) == (0.0, 0.0) and math.isnan(m.hd95) and math.isnan(m.assd)
        assert m.empty == where
    labels = np.zeros((6, 6), np.uint8)
    labels[1:3, 1:3] = 2
    out = label_metrics(labels, labels, (1, 1), classes=[1, 2, 3])
    assert math.isnan(out[1].dice) and out[2].dice == 1.0 and out[2].hd95 == 0.0 and math.isnan(out[3].nsd)
    assert list(label_metrics(labels, labels, (1, 1))) == [2]  # default: the labels present


def test_label_metrics_crop_changes_nothing():
    """Per-class cropping to the bounding box gives the numbers of the whole arrays."""
    rng = np.random.default_rng(3)
    truth = np.zeros((20, 40, 40), np.uint8)
    pred = np.zeros_like(truth)
    truth[_blobs(truth.shape, rng, 2)] = 1
    pred[_blobs(truth.shape, rng, 2)] = 1
    truth[2:6, 30:36, 3:9], pred[3:7, 30:35, 4:9] = 2, 2
    spacing = (2.5, 0.8, 0.7)
    out = label_metrics(truth, pred, spacing, tolerance_mm=1.5)
    for c in (1, 2):
        _, ref = _reference(truth == c, pred == c, spacing, 1.5)
        assert (out[c].dice, out[c].nsd, out[c].hd95, out[c].assd) == pytest.approx(
            (ref["dice"], ref["nsd"], ref["hd95"], ref["assd"]), rel=1e-12)


# ---- folders ----

SPACING_XYZ = (0.8, 0.9, 2.5)


def _labels(seed: int) -> np.ndarray:
    """(x, y, z) = (20, 16, 10) labels with classes 1 and 2."""
    rng = np.random.default_rng(seed)
    data = np.zeros((20, 16, 10), np.uint8)
    data[_blobs(data.shape, rng, 2)] = 1
    data[3:8, 9:14, 2:6] = 2
    return data


def _nifti(path, data, affine):
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), affine), path)
    return path


def _ras_affine():
    affine = np.diag([*SPACING_XYZ, 1.0])
    affine[:3, 3] = (-10.0, 5.0, 30.0)
    return affine


def _rows(csv_path) -> list[dict]:
    with open(csv_path, newline="") as f:
        return list(csv.DictReader(f))


def test_orientation_mixed_pairs_compare_in_world_space(tmp_path):
    """A RAS NIfTI truth against the same prediction stored in RAS, in LPS voxel order, with
    permuted axes, and as MetaImage: the same numbers, matching surface-distance's."""
    from segstudio.io.registry import read_scan, write_label_like

    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    truth, affine = _labels(1), _ras_affine()
    pred = np.roll(truth, (1, -1, 1), axis=(0, 1, 2))
    pred[ndimage.binary_dilation(truth == 1) & (pred == 0)] = 1
    for case in "abcd":
        _nifti(truth_dir / f"{case}.nii.gz", truth, affine)
    _nifti(pred_dir / "a.nii.gz", pred, affine)
    n_i, n_j = pred.shape[:2]
    flip = np.array([[-1, 0, 0, n_i - 1], [0, -1, 0, n_j - 1], [0, 0, 1, 0], [0, 0, 0, 1]], float)
    _nifti(pred_dir / "b_seg.nii.gz", pred[::-1, ::-1, :], affine @ flip)          # LPS voxel order
    permute = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    _nifti(pred_dir / "C.nii.gz", pred.transpose(2, 0, 1), affine @ permute)      # (k, i, j) order
    like = read_scan(pred_dir / "a.nii.gz", mask=True)
    write_label_like(like.array, like, pred_dir / "d.mha")                          # ITK, LPS world
    assert {read_scan(p, mask=True).orientation for p in pred_dir.iterdir()} == {"RAS", "LPS", "SRA"}

    report = evaluate_folders(pred_dir, truth_dir, tolerance_mm=1.0, out_dir=tmp_path / "out", workers=1)
    assert not report.problems and not report.missing_truth and not report.missing_predictions
    by_case = {case: [(r.label, r.dice, r.nsd, r.hd95, r.assd, r.volume_pred) for r in report.rows if r.case == case]
               for case in report.cases}
    assert sorted(by_case) == ["a", "b", "c", "d"]  # named after the truth files
    for case in ("b", "c", "d"):
        np.testing.assert_allclose(by_case[case], by_case["a"], rtol=1e-12)
    for row in (r for r in report.rows if r.case == "a"):
        # surface-distance on the file's own (x, y, z) arrays, at its (float32) voxel size
        spacing = tuple(float(z) for z in nib.load(truth_dir / "a.nii.gz").header.get_zooms())
        _, ref = _reference(truth == row.label, pred == row.label, spacing, 1.0)
        assert (row.dice, row.nsd, row.hd95, row.assd) == pytest.approx(
            (ref["dice"], ref["nsd"], ref["hd95"], ref["assd"]), rel=1e-12)
        assert row.volume_pred == pytest.approx((pred == row.label).sum() * np.prod(SPACING_XYZ) / 1000, rel=1e-6)
        assert (row.distance_unit, row.volume_unit) == ("mm", "mL")


def test_mismatched_geometry_missing_and_unreadable_are_listed(tmp_path):
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    affine = _ras_affine()
    for case in ("ok", "small", "moved", "broken", "only_truth"):
        _nifti(truth_dir / f"{case}.nii.gz", _labels(1), affine)
    _nifti(pred_dir / "ok.nii.gz", _labels(2), affine)
    _nifti(pred_dir / "small.nii.gz", _labels(2)[:10], affine)
    shifted = affine.copy()
    shifted[:3, 3] += 3.0
    _nifti(pred_dir / "moved.nii.gz", _labels(2), shifted)
    (pred_dir / "broken.nii.gz").write_bytes(b"\x1f\x8bnot really gzip")
    _nifti(pred_dir / "only_pred.nii.gz", _labels(2), affine)
    (pred_dir / "notes.txt").write_text("not a mask")

    report = evaluate_folders(pred_dir, truth_dir, out_dir=tmp_path / "out", workers=1)
    assert report.cases == ["ok"]
    assert report.missing_predictions == ["only_truth"] and report.missing_truth == ["only_pred"]
    problems = dict(report.problems)
    assert set(problems) == {"small", "moved", "broken.nii.gz"}
    assert problems["small"] == "prediction is 10x16x10 voxels but truth is 20x16x10"
    assert problems["moved"] == "prediction affine differs from the truth's by 5.2 mm"
    assert "gzip" in problems["broken.nii.gz"]
    summary = json.loads((tmp_path / "out" / SUMMARY_NAME).read_text())
    assert summary["missing_predictions"] == ["only_truth"] and summary["missing_truth"] == ["only_pred"]
    assert {p["file"] for p in summary["problems"]} == set(problems)


def test_images_csv_units_class_names_and_empty_classes(tmp_path, mk):
    """PNG masks: 0/255 truth against 0/1 predictions, distances and volumes in pixels, names
    from classes.txt, a named class absent everywhere left empty, predict's pictures skipped."""
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    (truth_dir / "classes.txt").write_text("background\nlesion\nvessel\n")
    square = mk.square(16, 16, 255)
    mk.png(truth_dir / "img1_mask.png", square)
    mk.png(pred_dir / "img1.png", square // 255)
    mk.png(pred_dir / "img1_color.png", np.stack([square] * 3, axis=-1))
    mk.png(truth_dir / "img2_mask.png", np.zeros((16, 16), np.uint8))
    shifted = np.roll(square // 255, 2, axis=1)
    mk.png(pred_dir / "img2.png", shifted)

    report = evaluate_folders(pred_dir, truth_dir, out_dir=tmp_path, workers=1)
    rows = _rows(tmp_path / CSV_NAME)
    assert list(rows[0]) == ["case", "class", "class_name", "dice", "nsd", "hd95", "assd", "volume_pred",
                             "volume_truth", "empty", "distance_unit", "volume_unit"]
    got = {(r["case"], r["class"]): r for r in rows}
    assert set(got) == {("img1", "1"), ("img1", "2"), ("img2", "1"), ("img2", "2")}
    one = got[("img1", "1")]
    assert (one["class_name"], one["dice"], one["nsd"], one["hd95"], one["assd"]) == ("lesion", "1", "1", "0", "0")
    assert (one["volume_pred"], one["distance_unit"], one["volume_unit"]) == ("64", "px", "px")
    missed = got[("img2", "1")]  # only in the prediction
    assert (missed["dice"], missed["nsd"], missed["hd95"], missed["assd"]) == ("0", "0", "", "")
    assert missed["empty"] == "truth"
    nothing = got[("img1", "2")]  # in neither
    assert (nothing["class_name"], nothing["dice"], nothing["hd95"], nothing["empty"]) == ("vessel", "", "", "both")
    assert not report.problems and not report.missing_truth  # img1_color.png is a picture, not a case
    summary = json.loads((tmp_path / SUMMARY_NAME).read_text())
    assert summary["distance_unit"] == "px" and summary["classes"]["2"]["empty"] == {"truth": 0, "prediction": 0,
                                                                                        "both": 2}
    assert summary["classes"]["2"]["dice"] == {"n": 0, "mean": None, "median": None, "ci95": None}


def test_summary_statistics_and_bootstrap_interval():
    rows = [ev.MetricRow(f"c{i}", 1, "organ", d, d, h, 1.0, 1.0, 1.0, "", "mm", "mL")
            for i, (d, h) in enumerate([(0.9, 2.0), (0.8, 3.0), (0.7, 4.0), (0.0, math.nan)])]
    rows.append(ev.MetricRow("c9", 1, "organ", math.nan, math.nan, math.nan, math.nan, 0, 0, "both", "mm", "mL"))
    report = ev.EvaluationReport(1.0, rows)
    summary = ev.summarise(report)
    organ = summary["classes"]["1"]
    assert organ["cases"] == 5 and organ["empty"]["both"] == 1
    assert organ["dice"]["n"] == 4 and organ["dice"]["mean"] == pytest.approx(0.6)
    assert organ["dice"]["median"] == pytest.approx(0.75)
    low, high = organ["dice"]["ci95"]
    assert 0.0 <= low < 0.6 < high <= 0.9
    assert organ["hd95"]["n"] == 3 and organ["hd95"]["mean"] == pytest.approx(3.0)
    assert ev.summarise(report) == summary  # a fixed seed: the same intervals every time
    same = ev.statistics([0.5, 0.5, 0.5], np.random.default_rng(0))
    assert same["ci95"] == [0.5, 0.5]


def test_dicom_seg_prediction_against_a_nifti_truth(tmp_path, mk):
    """A DICOM SEG (frames only where segments are) scored against a NIfTI label volume in the
    series' geometry: placed on one grid, named by its segment labels."""
    from segstudio.io import dicom_seg, dicom_series
    from segstudio.io.registry import write_label_like
    from segstudio.io.volume import to_native

    series_dir, truth_dir, pred_dir = tmp_path / "series", tmp_path / "truth", tmp_path / "pred"
    for d in (series_dir, truth_dir, pred_dir):
        d.mkdir()
    paths = mk.series(series_dir, 5)
    image = dicom_series.read(series_dir)
    truth = np.zeros(image.shape, np.uint8)  # canonical (Z, Y, X) = (5, 16, 16)
    truth[1:4, 3:9, 4:10] = 1
    truth[2, 10:14, 10:14] = 2
    write_label_like(truth, image, truth_dir / "case.nii.gz")
    pred = truth.copy()
    pred[3] = 0                                  # one slice missed
    pred[2, 10:14, 10:14] = 0                    # class 2 missed entirely
    native = to_native(pred, image)  # (i, j, k): columns, rows, slices in the files' order
    masks = [np.ascontiguousarray(native[:, :, k].T) for k in range(len(paths))]
    dicom_seg.write(paths, masks, ["background", "liver", "kidney"], pred_dir / "case_seg.dcm")

    report = evaluate_folders(pred_dir, truth_dir, workers=1)
    assert not report.problems, report.problems
    rows = {r.label: r for r in report.rows}
    expected = 2 * (pred == 1).sum() / ((pred == 1).sum() + (truth == 1).sum())
    assert rows[1].dice == pytest.approx(expected) and rows[1].class_name == "liver"
    assert rows[2].dice == 0.0 and rows[2].empty == "prediction" and rows[2].class_name == "kidney"


@pytest.mark.slow
def test_cancel_and_process_pool(tmp_path):
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    for i in range(2):
        _nifti(truth_dir / f"c{i}.nii.gz", _labels(i), _ras_affine())
        _nifti(pred_dir / f"c{i}.nii.gz", _labels(i + 10), _ras_affine())
    with pytest.raises(Cancelled):
        evaluate_folders(pred_dir, truth_dir, should_stop=lambda: True, workers=1)
    with pytest.raises(Cancelled):
        evaluate_folders(pred_dir, truth_dir, should_stop=lambda: True, workers=2)
    seen = []
    one = evaluate_folders(pred_dir, truth_dir, workers=1, progress=lambda d, t, m: seen.append((d, t)))
    two = evaluate_folders(pred_dir, truth_dir, workers=2)
    assert one.rows == two.rows and len(one.rows) == 4 and seen[0] == (0, 2) and seen[-1] == (2, 2)


def test_refuses_bad_folders_and_foreign_output_files(tmp_path, mk):
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    with pytest.raises(DataError, match="predictions folder not found"):
        evaluate_folders(tmp_path / "nope", truth_dir)
    mk.png(truth_dir / "a.png", mk.square())
    mk.png(pred_dir / "b.png", mk.square())
    with pytest.raises(DataError, match="no prediction .* has a ground truth"):
        evaluate_folders(pred_dir, truth_dir)
    mk.png(pred_dir / "a.png", mk.square())
    (pred_dir / SUMMARY_NAME).write_text('{"foreground": {"mean": 0.9}}')  # e.g. nnU-Net's
    with pytest.raises(DataError, match="was not written by segstudio evaluate"):
        evaluate_folders(pred_dir, truth_dir, out_dir=pred_dir)
    assert json.loads((pred_dir / SUMMARY_NAME).read_text()) == {"foreground": {"mean": 0.9}}
    (pred_dir / SUMMARY_NAME).unlink()
    evaluate_folders(pred_dir, truth_dir, out_dir=pred_dir)
    evaluate_folders(pred_dir, truth_dir, out_dir=pred_dir)  # its own files are replaced


def test_cli_prints_a_table_and_writes_files(tmp_path, mk, capsys):
    from segstudio.cli.evaluate import add_parser, run

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    truth_dir, pred_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir(), pred_dir.mkdir()
    mk.png(truth_dir / "a_mask.png", mk.square())
    mk.png(pred_dir / "a.png", mk.square(value=1))
    mk.png(truth_dir / "b_mask.png", mk.square())
    (truth_dir / "c_mask.png").write_bytes(b"garbage")
    mk.png(pred_dir / "c.png", mk.square(value=1))
    args = parser.parse_args(["evaluate", "--pred", str(pred_dir), "--truth", str(truth_dir), "--tolerance", "2"])
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "1 case(s) scored; distances in px; NSD at 2 px" in out
    assert "1 truth case(s) without a prediction: b" in out and "c_mask.png:" in out
    assert f"wrote {pred_dir / CSV_NAME}" in out and (pred_dir / SUMMARY_NAME).is_file()
    assert run(parser.parse_args(["evaluate", "--pred", str(tmp_path / "x"), "--truth", str(truth_dir)])) == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--pred", "p", "--truth", "t", "--tolerance", "0"])
