"""A model applied to data of another kind: refused when it cannot be right, noted when it may not
be; a Decathlon / nnU-Net root has its test scans predicted, with progress on the command line."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from segstudio.cli.main import main
from segstudio.errors import SegstudioError
from segstudio.inference import Predictor
from segstudio.model.backends import TorchBackend

CODES = ["background", "foreground"]
SCANS_2_5D = {"axis": "axial", "context": 1, "channels": 1, "modalities": []}


class Bright(torch.nn.Module):
    """A stand-in model: foreground where the normalised input is above zero."""

    def forward(self, x):
        fg = x.mean(dim=1, keepdim=True)
        return torch.cat([-fg, fg], dim=1)


def predictor(**meta) -> Predictor:
    return Predictor(TorchBackend(Bright(), {"codes": CODES, "size": 16, "n_in": 3, "mean": [0.5] * 3,
                                             "std": [0.25] * 3, "window": "auto", **meta}, torch.device("cpu")))


def nifti(path: Path, low: float, high: float) -> Path:
    data = np.linspace(low, high, 6 * 8 * 8).reshape(8, 8, 6).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def notes(report) -> str:
    return "\n".join(f"{n.path}: {n.reason}" for n in report.notes + report.mismatches)


def test_a_2_5d_scan_model_refuses_2d_dicom_slices_and_says_how_to_give_a_scan(tmp_path, mk):
    slices = tmp_path / "slices"
    slices.mkdir()
    mk.series(slices)
    model = predictor(volumes=SCANS_2_5D)
    with pytest.raises(SegstudioError, match=r"2\.5-D slices of 3-D scans.*nothing was written.*subfolder"):
        model.predict_folder(slices, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    # as the message says: the series in a folder of its own is a scan, predicted with its neighbours
    scans = tmp_path / "scans"
    scans.mkdir()
    slices.rename(scans / "series1")
    report = model.predict_folder(scans, tmp_path / "out")
    assert [Path(p).name for p in report.written] == [] and len(report.dicom_segs) == 1, report.problems


def test_a_multichannel_scan_model_refuses_2d_images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / "a.png")
    with pytest.raises(SegstudioError, match="3-D scans of 4 channels"):
        predictor(n_in=4, volumes={"context": 0, "channels": 4}).predict_folder(folder, tmp_path / "out")


def test_a_ct_model_on_other_images_writes_masks_with_a_note(tmp_path, mk):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        mk.dicom(folder / f"mr{k}.dcm", (mk.gradient() * 8).astype(np.uint16), Modality="MR")
    mk.png(folder / "photo.png", mk.gradient())
    mk.dicom(folder / "ct.dcm", mk.gradient().astype(np.int16) - 500, slope=1, intercept=0)
    report = predictor(window="400/40").predict_folder(folder, tmp_path / "out")
    assert len(report.written) == 5
    text = notes(report)
    assert "mr0.dcm and 2 more: the model was trained on CT in Hounsfield units (window 400/40)" in text
    assert "(MR)" in text and "photo.png: " in text and "(not DICOM)" in text and "ct.dcm" not in text
    assert not notes(predictor().predict_folder(folder, tmp_path / "out2"))  # a model not made for CT


def test_colour_and_grey_against_what_the_model_was_trained_on_are_noted(tmp_path, mk):
    folder = tmp_path / "in"
    folder.mkdir()
    mk.png(folder / "grey.png", mk.gradient())
    rgb = np.stack([mk.gradient(), mk.gradient()[::-1], np.zeros((16, 16), np.uint8)], axis=-1)
    mk.png(folder / "colour.png", rgb)
    grey_model = notes(predictor(channels=1).predict_folder(folder, tmp_path / "a"))
    colour_model = notes(predictor(channels=3).predict_folder(folder, tmp_path / "b"))
    assert grey_model == "colour.png: the model was trained on grey images; these are colour images: check the masks"
    assert colour_model.startswith("grey.png: the model was trained on colour images; these are grey")


def test_scans_a_model_may_not_fit_are_noted(tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    nifti(scans / "mr.nii.gz", 0, 1200)        # no HU air: not CT
    nifti(scans / "ct.nii.gz", -1000, 1500)
    ct_scans = {**SCANS_2_5D, "modalities": ["CT"]}
    report = predictor(window="400/40", volumes=ct_scans).predict_folder(scans, tmp_path / "a")
    assert len(report.written) == 2
    assert notes(report) == ("mr.nii.gz: the model was trained on CT in Hounsfield units (window 400/40); these "
                             "scans do not look like CT (no air near -1000 HU) and were windowed as CT all the "
                             "same: check the masks")
    report = predictor(window="400/40", volumes={**SCANS_2_5D, "context": 0}).predict_folder(scans, tmp_path / "b")
    assert notes(report).startswith("mr.nii.gz: ") and "scaled by their own percentiles" in notes(report)
    report = predictor().predict_folder(scans, tmp_path / "c")  # a model of 2-D images
    assert notes(report) == ("ct.nii.gz and 1 more: the model was trained on 2-D images, not on 3-D scans; these "
                             "scans were predicted as axial slices: check the masks")


def decathlon(root: Path, test: bool = True) -> Path:
    for folder in ("imagesTr", "labelsTr") + (("imagesTs",) if test else ()):
        (root / folder).mkdir(parents=True)
    nifti(root / "imagesTr" / "train_0000.nii.gz", -1000, 1000)
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 6), np.uint8), np.eye(4)), root / "labelsTr" / "train.nii.gz")
    if test:
        for name in ("test1", "test2"):
            nifti(root / "imagesTs" / f"{name}_0000.nii.gz", -1000, 1000)
    return root


def test_a_decathlon_root_has_its_test_scans_predicted_and_says_so(tmp_path, capsys, monkeypatch):
    root = decathlon(tmp_path / "Task01")
    model = predictor(volumes={**SCANS_2_5D, "context": 0})
    report = model.predict_folder(root, tmp_path / "out")
    assert sorted(Path(p).name for p in report.written) == ["test1.nii.gz", "test2.nii.gz"]
    assert report.images_dir == str(root / "imagesTs")
    assert "Task01: a Decathlon / nnU-Net dataset: its test scans in imagesTs/ were predicted" in notes(report)
    # on the command line, with progress on stderr
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, *a, **k: model))
    assert main(["predict", "--model", "run", "--images", str(root), "--out", str(tmp_path / "cli")]) == 0
    err = capsys.readouterr().err
    assert "predicting 1 of 2: test1" in err and "predicted 2 of 2 in " in err and "imagesTs/ were predicted" in err
    # without test scans: the training scans, said so
    report = model.predict_folder(decathlon(tmp_path / "Task02", test=False), tmp_path / "out2")
    assert [Path(p).name for p in report.written] == ["train.nii.gz"]
    assert "without test scans (imagesTs/): its training scans in imagesTr/ were predicted" in notes(report)


def test_predict_on_the_command_line_shows_progress(tmp_path, capsys, monkeypatch, mk):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        mk.png(folder / f"img{k}.png", mk.gradient())
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, *a, **k: predictor()))
    assert main(["predict", "--model", "run", "--images", str(folder), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "predicting 1 of 3: img0.png (0:00 so far)" in err and "predicted 3 of 3 in 0:0" in err


def test_a_file_given_as_the_images_folder_is_named_as_a_file(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SegstudioError, match="notes.txt is a file, not a folder of images"):
        predictor().predict_folder(tmp_path / "notes.txt", tmp_path / "out")
