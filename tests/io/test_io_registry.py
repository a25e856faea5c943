"""The reader registry: the format module is chosen by content, each reader reads what it claims,
a 2-D file is a Volume of one slice per frame, and a file no reader can read gives a DataError
with a one-line reason."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from segstudio.errors import DataError
from segstudio.io import dicom_file, dicom_seg, dicom_series, itk, nifti, raster
from segstudio.io.registry import READERS, read_image, read_scan, reader_for, write_label_like
from segstudio.io.sniff import read_head
from segstudio.io.volume import Volume

LABELS = np.zeros((4, 5, 6), np.uint8)  # the file's (i, j, k)
LABELS[1:3, 2:4, 1:5] = 1
LABELS[0, 0, 0] = 2


def save_nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.9, 2.5, 1.0])), path)
    return path


def save_nrrd(path: Path, data: np.ndarray) -> Path:
    """`data` in (i, j, k) order as NRRD at `path` (ITK writes by the name: written as .nrrd)."""
    named = path if path.name.endswith(".nrrd") else path.with_name(path.name + ".nrrd")
    sitk.WriteImage(sitk.GetImageFromArray(data.transpose(2, 1, 0)), str(named))
    return named if named == path else named.rename(path)


def series_with_seg(folder: Path, mk) -> tuple[list[Path], Path, list[np.ndarray]]:
    """A 3-slice series in `folder` and a DICOM SEG of it beside the slices."""
    paths = mk.series(folder, 3)
    masks = [np.zeros((16, 16), np.uint8) for _ in paths]
    masks[1][4:8, 4:8] = 1
    masks[2][2:5, 9:12] = 2
    seg = dicom_seg.write(paths, masks, ["background", "liver", "kidney"], folder / "seg.dcm")
    return paths, seg, masks


def one_line(error: pytest.ExceptionInfo, tmp_path: Path) -> str:
    text = str(error.value)
    assert text and "\n" not in text and str(tmp_path) not in text, text
    return text


def test_the_reader_is_chosen_by_content_not_by_name(tmp_path, mk):
    (tmp_path / "series").mkdir()
    _, seg, _ = series_with_seg(tmp_path / "series", mk)
    files = {
        mk.png(tmp_path / "photo.dcm", mk.gradient()): raster,             # a PNG named .dcm
        mk.dicom(tmp_path / "IM0001", mk.gradient()): dicom_file,          # DICOM without extension
        save_nifti(tmp_path / "a.nii.gz", LABELS): nifti,
        save_nifti(tmp_path / "a.nii", LABELS).rename(tmp_path / "scan.bin"): nifti,  # by its header
        save_nrrd(tmp_path / "b.nrrd", LABELS): itk,
        save_nrrd(tmp_path / "nrrd_without_ending", LABELS): itk,
        seg: dicom_seg,
        tmp_path / "series": dicom_series,
    }
    assert {p.name: reader_for(p) for p in files} == {p.name: r for p, r in files.items()}
    slices = sorted((tmp_path / "series").glob("s*.dcm"))
    assert reader_for(slices[0]) is dicom_file  # an image of the series, not a SEG


def test_every_reader_says_yes_to_its_own_files(tmp_path, mk):
    (tmp_path / "series").mkdir()
    paths, seg, _ = series_with_seg(tmp_path / "series", mk)
    own = {raster: mk.png(tmp_path / "x.png", mk.gradient()), dicom_file: paths[0],
           nifti: save_nifti(tmp_path / "x.nii.gz", LABELS), itk: save_nrrd(tmp_path / "x.nrrd", LABELS),
           dicom_seg: seg, dicom_series: tmp_path / "series"}
    for reader in READERS:
        claimed = {r for r, p in own.items() if reader.can_read(p, b"" if p.is_dir() else read_head(p))}
        # dicom_file also takes any file it cannot tell from DICOM without a preamble (so the
        # order of READERS puts it last but raster)
        assert claimed == ({reader, nifti, itk, dicom_seg} if reader is dicom_file else {reader}), reader.__name__


def test_label_volumes_round_trip_through_read_and_write(tmp_path):
    for reader, path in ((nifti, save_nifti(tmp_path / "l.nii.gz", LABELS)),
                         (itk, save_nrrd(tmp_path / "l.nrrd", LABELS))):
        vol = reader.read(path, mask=True)
        assert isinstance(vol, Volume) and vol.array.dtype.kind == "u" and vol.shape == (6, 5, 4)
        assert np.bincount(vol.array.ravel()).tolist() == np.bincount(LABELS.ravel()).tolist()
        out = write_label_like(vol.array, vol, tmp_path / f"back{''.join(path.suffixes)}")
        assert np.array_equal(np.asanyarray(nib.load(out).dataobj) if reader is nifti
                              else sitk.GetArrayFromImage(sitk.ReadImage(str(out))).transpose(2, 1, 0), LABELS)


def test_an_nrrd_without_its_ending_reads_like_the_named_one(tmp_path):
    named = read_scan(save_nrrd(tmp_path / "c.nrrd", LABELS), mask=True)
    bare = read_scan(save_nrrd(tmp_path / "c_without_ending", LABELS), mask=True)
    assert np.array_equal(bare.array, named.array) and np.allclose(bare.affine, named.affine)
    assert bare.format == "nrrd"


def test_dicom_series_and_seg_read_as_one_volume_and_its_labels(tmp_path, mk):
    paths, seg, masks = series_with_seg(tmp_path, mk)
    scan = dicom_series.read(tmp_path)
    assert scan.shape == (3, 16, 16) and scan.format == "dicom" and scan.modality == "CT"
    assert scan.source == [str(p) for p in paths]  # slice order
    parsed = dicom_seg.read(seg)
    assert parsed.labels == {1: "liver", 2: "kidney"}
    labels = dicom_seg.read_volume(seg, scan, ["background", "liver", "kidney"])
    assert labels.shape == scan.shape
    assert np.bincount(labels.array.ravel(), minlength=3).tolist() == \
        np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=3).tolist()
    with pytest.raises(DataError, match="a label must be a single file"):
        read_scan(tmp_path, mask=True)


def test_a_2d_image_is_a_volume_of_one_slice(tmp_path, mk):
    grey = mk.gradient(6, 9)
    image = read_image(mk.png(tmp_path / "g.png", grey))
    assert isinstance(image, Volume) and image.array.shape == (1, 6, 9) and image.spacing == (1.0, 1.0, 1.0)
    assert np.array_equal(image.frames[0], grey) and image.format == "png" and image.source == [str(tmp_path / "g.png")]
    rgb = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    colour = read_image(mk.png(tmp_path / "c.png", rgb))
    assert colour.array.shape == (3, 1, 6, 9) and colour.channels == 3 and np.array_equal(colour.frames[0], rgb)
    same = read_image(mk.png(tmp_path / "s.png", np.stack([grey] * 3, axis=-1)))
    assert same.array.shape == (1, 6, 9)  # three equal channels are grey
    frames = np.stack([mk.gradient(6, 9).astype(np.int16) * k for k in (1, 2, 3)])
    dicom = read_image(mk.dicom(tmp_path / "m.dcm", frames, multiframe=True), mask=True)
    assert dicom.array.shape == (3, 6, 9) and np.array_equal(np.stack(dicom.frames), frames)
    assert dicom.format == "dicom" and dicom.modality == "CT"


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b""), r"^empty file \(0 bytes\)$"),
    (lambda p: p.write_bytes(b"not an image" * 20), r"^not a valid PNG or other image file \(unrecognised content\)$"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40), r"^cannot decode PNG: "),
])
def test_an_unreadable_file_gives_a_one_line_reason(tmp_path, make, reason):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(DataError, match=reason) as error:
        read_image(path)
    one_line(error, tmp_path)


def test_a_file_no_scan_reader_takes_is_not_a_volume(tmp_path, mk):
    with pytest.raises(DataError, match=r"^not a volume file \(expected \.nii\.gz, ") as error:
        read_scan(mk.png(tmp_path / "x.png", mk.gradient()))
    one_line(error, tmp_path)
    with pytest.raises(DataError, match="^cannot open file") as error:
        reader_for(tmp_path / "missing.nii.gz")
    one_line(error, tmp_path)
