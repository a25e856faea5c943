"""Dataset layouts (Decathlon / nnU-Net, KiTS, two folders) and the volumetric sample."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import platformdirs
import pytest
import SimpleITK as sitk

from segstudio.data.layouts import detect_layout
from segstudio.data.sample_volumes import REORIENTED, VERSION, sample_volumes
from segstudio.io.registry import read_scan, write_label_like
from segstudio.io.volume import check_same_geometry
from segstudio.errors import DataError


def vol(path: Path) -> Path:
    """A tiny volume file in the format its name says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((3, 4, 4), np.uint8)
    if ".nii" in path.name:
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(data), str(path))
    return path


def tree(root: Path, names: list[str]) -> Path:
    for name in names:
        vol(root / name)
    return root


def summary(layout) -> dict[str, tuple[list[str], str | None]]:
    return {c.name: ([p.name for p in c.images], c.label.name if c.label else None) for c in layout.cases}


def reasons(layout) -> list[tuple[str, str]]:
    return [(p.name, why) for p, why in layout.problems]


# --- Decathlon / nnU-Net -----------------------------------------------------------------------

def test_decathlon_multichannel_with_decathlon_json(tmp_path):
    root = tree(tmp_path / "Task01", ["imagesTr/p1_0000.nii.gz", "imagesTr/p1_0001.nii.gz",
                                      "imagesTr/p2_0001.nii.gz", "imagesTr/p2_0000.nii.gz",
                                      "imagesTr/._p1_0000.nii.gz", "labelsTr/p1.nii.gz",
                                      "labelsTr/p2.nii.gz", "labelsTr/._p2.nii.gz", "imagesTs/p9_0000.nii.gz"])
    (root / "dataset.json").write_text(json.dumps({
        "modality": {"0": "T1", "1": "T2"}, "labels": {"0": "background", "1": "edema", "3": "tumour"}}))
    for given in [(root,), (root / "imagesTr",), (root / "imagesTr", root / "labelsTr")]:
        layout = detect_layout(*given)
        assert layout.kind == "decathlon"
        assert summary(layout) == {"p1": (["p1_0000.nii.gz", "p1_0001.nii.gz"], "p1.nii.gz"),
                                   "p2": (["p2_0000.nii.gz", "p2_0001.nii.gz"], "p2.nii.gz")}
        assert layout.class_names == ["background", "edema", "class 2", "tumour"]
        assert layout.problems == [] and layout.notes == ["channels: 0 T1, 1 T2"]


def test_nnunet_v2_json_labels_and_regions(tmp_path):
    root = tree(tmp_path, ["imagesTr/liver_001_0000.nii.gz", "labelsTr/liver_001.nii.gz"])
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumour": 2},
        "numTraining": 1, "file_ending": ".nii.gz"}))
    layout = detect_layout(root)
    assert layout.class_names == ["background", "liver", "tumour"]
    assert summary(layout) == {"liver_001": (["liver_001_0000.nii.gz"], "liver_001.nii.gz")}
    (root / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "whole": [1, 2], "core": 2}}))
    layout = detect_layout(root)
    assert layout.class_names is None and "class names ignored" in layout.notes[0]
    (root / "dataset.json").write_text("{not json")
    layout = detect_layout(root)
    assert layout.kind == "decathlon" and len(layout.cases) == 1
    assert reasons(layout)[0][0] == "dataset.json" and "cannot read dataset.json" in reasons(layout)[0][1]


def test_missing_channels_and_stray_files_are_problems(tmp_path):
    root = tree(tmp_path, ["imagesTr/a_0000.nii.gz", "imagesTr/a_0001.nii.gz",
                           "imagesTr/b_0000.nii.gz", "imagesTr/b_0002.nii.gz",  # no _0001
                           "imagesTr/c_0000.nii.gz",                            # one of two channels
                           "imagesTr/d_0000.nii.gz", "imagesTr/d_0001.nii.gz", "imagesTr/d_0001.nrrd",
                           "imagesTr/e_0000.nii.gz", "imagesTr/e_0001.nii.gz",  # no label
                           "labelsTr/a.nii.gz", "labelsTr/b.nii.gz", "labelsTr/c.nii.gz",
                           "labelsTr/d.nii.gz", "labelsTr/zz.nii.gz", "labelsTr/a_seg.nrrd"])
    layout = detect_layout(root)
    assert summary(layout) == {"a": (["a_0000.nii.gz", "a_0001.nii.gz"], "a.nii.gz"),
                               "d": (["d_0000.nii.gz", "d_0001.nii.gz"], "d.nii.gz"),
                               "e": (["e_0000.nii.gz", "e_0001.nii.gz"], None)}
    assert sorted(reasons(layout)) == sorted([
        ("d_0001.nrrd", "another file is channel 1 of case d: d_0001.nii.gz"),
        ("b_0000.nii.gz", "case b lacks channel file(s) _0001"),
        ("c_0000.nii.gz", "case c lacks channel file(s) _0001"),
        ("a_seg.nrrd", "another label for the same case: a.nii.gz"),
        ("b.nii.gz", "label without an image"), ("c.nii.gz", "label without an image"),
        ("zz.nii.gz", "label without an image")])
    assert layout.notes == ["1 case(s) without a label (unlabelled)"]


def test_dataset_json_channel_count_is_enforced(tmp_path):
    root = tree(tmp_path, ["imagesTr/a_0000.nii.gz", "imagesTr/a_0001.nii.gz", "labelsTr/a.nii.gz"])
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0}}))
    layout = detect_layout(root)
    assert layout.cases == [] and reasons(layout) == [
        ("a_0000.nii.gz", "case a has 2 channel(s), expected 1"), ("a.nii.gz", "label without an image")]


def test_original_decathlon_4d_files_without_channel_suffix(tmp_path):
    root = tree(tmp_path, ["imagesTr/BRATS_001.nii.gz", "imagesTr/BRATS_002.nii.gz",
                           "labelsTr/BRATS_001.nii.gz"])
    (root / "dataset.json").write_text(json.dumps({"modality": {"0": "FLAIR", "1": "T1w"}}))
    layout = detect_layout(root)
    assert summary(layout) == {"BRATS_001": (["BRATS_001.nii.gz"], "BRATS_001.nii.gz"),
                               "BRATS_002": (["BRATS_002.nii.gz"], None)}
    assert layout.problems == [] and layout.class_names is None


def test_decathlon_without_labels_folder(tmp_path):
    layout = detect_layout(tree(tmp_path, ["imagesTr/x.nii.gz"]))
    assert summary(layout) == {"x": (["x.nii.gz"], None)}
    assert "no labelsTr folder: every case is unlabelled" in layout.notes


# --- KiTS --------------------------------------------------------------------------------------

def test_kits_case_folders(tmp_path):
    root = tree(tmp_path, ["case_00000/imaging.nii.gz", "case_00000/segmentation.nii.gz",
                           "case_00001/imaging.nii.gz", "case_00002/imaging.nrrd",
                           "case_00002/segmentation.nrrd", "case_00003/notes.nii.gz",
                           "case_00004/imaging.nii.gz", "case_00004/imaging.nii"])
    (root / "docs").mkdir()
    layout = detect_layout(root)
    assert layout.kind == "kits"
    assert summary(layout) == {"case_00000": (["imaging.nii.gz"], "segmentation.nii.gz"),
                               "case_00001": (["imaging.nii.gz"], None),
                               "case_00002": (["imaging.nrrd"], "segmentation.nrrd")}
    assert reasons(layout) == [("case_00003", "no imaging volume in the case folder"),
                               ("case_00004", "2 imaging volumes in one case folder")]
    assert layout.notes == ["1 case(s) without a segmentation (unlabelled)"]


# --- two folders -------------------------------------------------------------------------------

def test_two_folders_paired_by_stem_across_formats(tmp_path):
    images = tree(tmp_path / "img", ["ct_001.nii.gz", "ct_002.nrrd", "ct_003.mha", "ct_004.nii"])
    masks = tree(tmp_path / "lab", ["ct_001_seg.nii.gz", "CT_002-label.nii", "ct_003_mask.nrrd", "other.nii"])
    layout = detect_layout(images, masks)
    assert layout.kind == "folders"
    assert summary(layout) == {"ct_001": (["ct_001.nii.gz"], "ct_001_seg.nii.gz"),
                               "ct_002": (["ct_002.nrrd"], "CT_002-label.nii"),
                               "ct_003": (["ct_003.mha"], "ct_003_mask.nrrd"),
                               "ct_004": (["ct_004.nii"], None)}
    assert reasons(layout) == [("other.nii", "label without an image")]


def test_two_folders_channels_or_numbered_cases(tmp_path):
    images = tree(tmp_path / "a", ["p1_0000.nii.gz", "p1_0001.nii.gz", "p2_0000.nii.gz", "p2_0001.nii.gz"])
    labels = tree(tmp_path / "b", ["p1.nii.gz", "p2_gt.nii.gz"])
    assert summary(detect_layout(images, labels)) == {
        "p1": (["p1_0000.nii.gz", "p1_0001.nii.gz"], "p1.nii.gz"),
        "p2": (["p2_0000.nii.gz", "p2_0001.nii.gz"], "p2_gt.nii.gz")}
    numbered = tree(tmp_path / "c", ["scan_0001.nii", "scan_0002.nii"])
    labels = tree(tmp_path / "d", ["scan_0001_gt.nii", "scan_0002_gt.nii"])
    assert summary(detect_layout(numbered, labels)) == {"scan_0001": (["scan_0001.nii"], "scan_0001_gt.nii"),
                                                         "scan_0002": (["scan_0002.nii"], "scan_0002_gt.nii")}
    many = tree(tmp_path / "e", [f"scan_{i:04d}.nii" for i in range(10)])
    (tmp_path / "none").mkdir()
    layout = detect_layout(many, tmp_path / "none")
    assert len(layout.cases) == 10 and layout.problems == []
    assert layout.notes == ["no labels: every case is unlabelled"]


def test_one_folder_with_seg_files_and_missing_folders(tmp_path):
    """Labels beside their scans; Cellpose-style "_masks" names are labels too."""
    root = tree(tmp_path / "mixed", ["a.nii.gz", "a_seg.nii.gz", "b.nrrd", "b_label.nrrd", "c.mha",
                                     "d.nii.gz", "d_masks.nii.gz"])
    layout = detect_layout(root)
    assert layout.kind == "folders"
    assert summary(layout) == {"a": (["a.nii.gz"], "a_seg.nii.gz"), "b": (["b.nrrd"], "b_label.nrrd"),
                               "c": (["c.mha"], None), "d": (["d.nii.gz"], "d_masks.nii.gz")}
    with pytest.raises(DataError, match="folder not found"):
        detect_layout(tmp_path / "nowhere")
    with pytest.raises(DataError, match="folder not found"):
        detect_layout(root, tmp_path / "nowhere")
    with pytest.raises(DataError, match="not a folder: .*c.mha"):  # a file given for a folder
        detect_layout(root / "c.mha")


# --- the volumetric sample ---------------------------------------------------------------------

def test_sample_volumes_layout_geometry_and_labels(tmp_path):
    images, labels = sample_volumes(tmp_path / "s")
    assert (images, labels) == (tmp_path / "s" / "imagesTr", tmp_path / "s" / "labelsTr")
    layout = detect_layout(tmp_path / "s")
    assert layout.kind == "decathlon" and layout.problems == []
    assert layout.class_names == ["background", "liver", "kidney"]
    assert [c.name for c in layout.cases] == [f"case_{n:03d}" for n in range(1, 7)]
    seen = set()
    for n, case in enumerate(layout.cases, 1):
        image, label = read_scan(case.images[0]), read_scan(case.label, mask=True)
        assert check_same_geometry(image, label) is None
        assert image.spacing == pytest.approx((2.5, 0.8, 0.8)) and 24 <= image.shape[0] <= 40
        assert (image.orientation != label.orientation) == (n in REORIENTED)
        # for those cases the stored label array is not the label in the image's voxel order
        in_image_order = np.asanyarray(nib.load(write_label_like(label.array, image, tmp_path / "l.nii")).dataobj)
        stored = np.asanyarray(nib.load(case.label).dataobj)
        assert (stored.shape == in_image_order.shape and np.array_equal(stored, in_image_order)) == (
            n not in REORIENTED)
        # the labels sit on the organs: liver ~80 HU, kidneys ~160 HU, everything else lower
        liver, kidney = image.array[label.array == 1], image.array[label.array == 2]
        assert 60 < liver.mean() < 100 and 140 < kidney.mean() < 180
        # kidneys: one on each side of the midline, posterior to the liver's centre
        xs = np.argwhere(label.array == 2)[:, 2]
        assert xs.min() < 32 < xs.max()
        seen |= set(np.unique(label.array).tolist())
    assert seen == {0, 1, 2}


def test_sample_volumes_default_root_written_once_and_deterministic(tmp_path):
    images, _ = sample_volumes()
    root = images.parent
    assert root == platformdirs.user_cache_path("segstudio", appauthor=False) / VERSION
    stamp = (root / "dataset.json").stat().st_mtime_ns
    assert sample_volumes() == (images, root / "labelsTr")
    assert (root / "dataset.json").stat().st_mtime_ns == stamp
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temp folder left
    sample_volumes(tmp_path / "again")
    for a in sorted(root.rglob("*.nii.gz")):
        assert a.read_bytes() == (tmp_path / "again" / a.relative_to(root)).read_bytes()


def test_a_dataset_root_with_a_stale_masks_folder_is_still_its_layout(tmp_path):
    from segstudio.data.sample_volumes import sample_volumes

    images, _ = sample_volumes(tmp_path / "ds")
    old = tmp_path / "old_masks"
    old.mkdir()
    layout = detect_layout(images.parent, old)
    assert layout.kind == "decathlon" and len(layout.cases) == 6
    assert any("old_masks/ was not used" in n for n in layout.notes)
