"""Volume I/O: real NIfTI headers, canonical orientation, geometry round trips, broken files."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from nibabel.testing import data_path

from segstudio.io.reasons import GZIP_REASON
from segstudio.io.registry import (is_volume_file, read_channels, read_scan, volume_files, volume_stem,
                                   write_label_like)
from segstudio.io.volume import Volume, check_same_geometry, orientation_code
from segstudio.errors import DataError

NIBABEL_DATA = Path(data_path)
# i -> -y (posterior), j -> -x (left), k -> z (superior), 0.7 / 0.8 / 2.5 mm, then 20 degrees about
# z: "PLS", a 3-cycle away from the canonical "SPL", so a transform applied backwards shows
_ROT = np.array([[np.cos(0.35), -np.sin(0.35), 0], [np.sin(0.35), np.cos(0.35), 0], [0, 0, 1]])
OBLIQUE = np.eye(4)
OBLIQUE[:3, :3] = _ROT @ np.array([[0, -0.8, 0], [-0.7, 0, 0], [0, 0, 2.5]])
OBLIQUE[:3, 3] = [12.0, -30.5, 7.25]


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray = OBLIQUE, **slope_inter) -> Path:
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=2)
    if slope_inter:
        img.header.set_slope_inter(**slope_inter)
    nib.save(img, path)
    return path


def save_itk(path: Path, data_ijk: np.ndarray, affine: np.ndarray = OBLIQUE, compress: bool = True) -> Path:
    """An ITK file holding `data_ijk` (i, j, k order) at the RAS `affine` (ITK stores LPS)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img = sitk.GetImageFromArray(np.ascontiguousarray(data_ijk.transpose(2, 1, 0)))
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    sitk.WriteImage(img, str(path), useCompression=compress)
    return path


def ramp(shape=(5, 6, 7), dtype=np.int16) -> np.ndarray:
    """Every voxel a different value, so any misplaced voxel shows."""
    return np.arange(np.prod(shape)).reshape(shape).astype(dtype)


def expect_same_voxels(vol: Volume, data: np.ndarray, affine: np.ndarray) -> None:
    """Every canonical voxel holds the file's value at the file index its world position maps to."""
    idx = np.indices(vol.shape).reshape(3, -1)
    to_file = np.linalg.inv(affine) @ vol.affine
    file_idx = np.round(to_file[:3, :3] @ idx + to_file[:3, 3:]).astype(int)
    np.testing.assert_allclose(to_file[:3, :3] @ idx + to_file[:3, 3:], file_idx, atol=1e-4)
    values = data[tuple(file_idx)]
    if vol.array.ndim == 4:
        np.testing.assert_array_equal(vol.array.reshape(vol.channels, -1), values.T)
    else:
        np.testing.assert_array_equal(vol.array.ravel(), values)


# --- real NIfTI files shipped with nibabel -----------------------------------------------------

@pytest.mark.parametrize("name", ["anatomical.nii", "reoriented_anat_moved.nii", "standard.nii.gz",
                                  "example4d.nii.gz", "example_nifti2.nii.gz"])
def test_nibabel_files_read_canonical(name):
    img = nib.load(NIBABEL_DATA / name)
    vol = read_scan(NIBABEL_DATA / name)
    assert vol.format == "nifti" and vol.modality == "" and vol.source == [str(NIBABEL_DATA / name)]
    assert vol.orientation == "".join(nib.aff2axcodes(img.affine))
    assert orientation_code(vol.affine) == "SPL"
    assert vol.array.dtype == np.float32
    data = img.get_fdata(dtype=np.float32)
    # nibabel's own canonical (RAS) array, turned into ours: (S, P, L) axes in numpy order
    ras = nib.as_closest_canonical(img).get_fdata(dtype=np.float32)
    ours = np.moveaxis(ras, (0, 1, 2), (-1, -2, -3))[..., ::-1, ::-1]
    np.testing.assert_array_equal(vol.array, ours)
    assert vol.channels == (img.shape[3] if img.ndim == 4 else 1)
    assert sorted(vol.spacing) == pytest.approx(sorted(img.header.get_zooms()[:3]), rel=1e-6)
    expect_same_voxels(vol, data, img.affine)
    assert vol.native.shape == img.shape[:3]
    np.testing.assert_allclose(vol.native.affine, img.affine)


def test_nifti2_is_read_as_nifti2_and_written_back_as_nifti2(tmp_path):
    vol = read_scan(NIBABEL_DATA / "example_nifti2.nii.gz")
    out = write_label_like(np.zeros(vol.shape, np.uint8), vol, tmp_path / "lab.nii.gz")
    assert isinstance(nib.load(out), nib.Nifti2Image)


def test_long_4d_series_is_refused():
    with pytest.raises(DataError, match=r"4-D image with 20 volumes \(a time series\?\)"):
        read_scan(NIBABEL_DATA / "functional.nii")


def test_scl_slope_inter_applied_to_images_and_labels(tmp_path):
    stored = ramp((3, 4, 5))
    path = save_nifti(tmp_path / "s.nii", stored, slope=2.0, inter=-10.0)
    img = read_scan(path)
    assert img.array.dtype == np.float32
    assert sorted(np.unique(img.array)) == sorted(np.unique(stored * 2.0 - 10.0))
    lab = read_scan(path, mask=True)
    assert lab.array.dtype.kind == "i" and set(np.unique(lab.array)) == set(np.unique(stored * 2 - 10))


def test_integer_labels_stay_exact_and_keep_their_dtype():
    vol = read_scan(NIBABEL_DATA / "standard.nii.gz", mask=True)
    raw = np.asanyarray(nib.load(NIBABEL_DATA / "standard.nii.gz").dataobj)
    assert vol.array.dtype == np.uint8
    assert np.bincount(vol.array.ravel()).tolist() == np.bincount(raw.ravel()).tolist()


def test_cifti_is_refused_with_a_reason():
    with pytest.raises(DataError, match="5-D data; expected a 3-D volume"):
        read_scan(NIBABEL_DATA / "row_major.dconn.nii")


# --- geometry round trips ----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_label_written_like_its_image_lands_on_the_same_voxels(tmp_path, suffix):
    data = ramp(dtype=np.float32)
    data[2, 1, 3] = 1000.0  # the marker, at a known index of the file's own array order
    if suffix.startswith(".nii"):
        path = save_nifti(tmp_path / f"img{suffix}", data)
    else:
        path = save_itk(tmp_path / f"img{suffix}", data)
    vol = read_scan(path)
    assert vol.orientation == "PLS"
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.8))  # file axes P, L, S -> array S, P, L
    assert vol.shape == (7, 5, 6)
    labels = np.zeros(vol.shape, np.uint8)
    labels[np.unravel_index(np.argmax(vol.array), vol.shape)] = 3
    out = write_label_like(labels, vol, tmp_path / f"label{suffix}")
    assert out == tmp_path / f"label{suffix}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, out.name])  # no temp files
    if suffix.startswith(".nii"):
        img, lab = nib.load(path), nib.load(out)
        assert lab.shape == img.shape and lab.get_data_dtype() == np.uint8
        np.testing.assert_allclose(lab.affine, img.affine)
        np.testing.assert_allclose(lab.header.get_qform(), img.header.get_qform())
        assert lab.header.get_sform(coded=True)[1] == 2 and lab.header.get_qform(coded=True)[1] == 1
        found = np.asanyarray(lab.dataobj)
    else:
        img, lab = sitk.ReadImage(str(path)), sitk.ReadImage(str(out))
        assert lab.GetSize() == img.GetSize()
        np.testing.assert_allclose(lab.GetSpacing(), img.GetSpacing())
        np.testing.assert_allclose(lab.GetOrigin(), img.GetOrigin(), atol=1e-9)
        np.testing.assert_allclose(lab.GetDirection(), img.GetDirection(), atol=1e-9)
        found = sitk.GetArrayFromImage(lab).transpose(2, 1, 0)
    assert np.argwhere(found == 3).tolist() == [[2, 1, 3]]
    back = read_scan(out, mask=True)
    assert check_same_geometry(vol, back) is None
    np.testing.assert_array_equal(back.array, labels)


def test_label_keeps_header_but_not_image_scaling_or_window(tmp_path):
    path = save_nifti(tmp_path / "ct.nii.gz", ramp(), slope=2.0, inter=-1024.0)
    img = nib.load(path)
    img.header["cal_min"], img.header["cal_max"] = -160, 240
    nib.save(img, path)
    vol = read_scan(path)
    labels = np.zeros(vol.shape, np.uint16)
    labels[0, 0, 0] = 300  # too big for uint8
    lab = nib.load(write_label_like(labels, vol, tmp_path / "lab.nii.gz"))
    assert lab.get_data_dtype() == np.uint16
    assert lab.header["cal_max"] == 0 and lab.header.get_intent()[0] == "label"
    assert np.asanyarray(lab.dataobj).max() == 300 and lab.dataobj.slope == 1 and lab.dataobj.inter == 0


def test_label_written_in_another_format_keeps_the_geometry(tmp_path):
    vol = read_scan(save_nifti(tmp_path / "img.nii.gz", ramp()))
    labels = (vol.array > 100).astype(np.uint8)
    for name in ("lab.nrrd", "lab.mha"):
        back = read_scan(write_label_like(labels, vol, tmp_path / name), mask=True)
        assert check_same_geometry(vol, back) is None
        np.testing.assert_array_equal(back.array, labels)
    itk = read_scan(save_itk(tmp_path / "img.nrrd", ramp()))
    back = read_scan(write_label_like(itk.array > 100, itk, tmp_path / "from_itk.nii.gz"), mask=True)
    assert check_same_geometry(itk, back) is None
    assert nib.load(tmp_path / "from_itk.nii.gz").header.get_sform(coded=True)[1] == 1


def test_write_label_like_refuses_bad_input(tmp_path):
    vol = read_scan(save_nifti(tmp_path / "img.nii", ramp()))
    with pytest.raises(ValueError, match="labels are 7x5x5 but the volume is 6x5x7"):
        write_label_like(np.zeros((5, 5, 7), np.uint8), vol, tmp_path / "l.nii")
    with pytest.raises(ValueError, match="use .nii.gz"):
        write_label_like(np.zeros(vol.shape, np.uint8), vol, tmp_path / "l.mhd")
    with pytest.raises(ValueError, match="integers from 0 to 65535"):
        write_label_like(np.full(vol.shape, -1), vol, tmp_path / "l.nii")
    with pytest.raises(ValueError, match="not read from a file"):
        write_label_like(np.zeros((1, 4, 4), np.uint8), Volume.from_2d(np.zeros((4, 4))), tmp_path / "l.nii")
    assert [p.name for p in tmp_path.iterdir()] == ["img.nii"]


# --- pairing by geometry -----------------------------------------------------------------------

@pytest.mark.parametrize("label_axes", [("L", "P", "S"), ("A", "L", "I"), ("S", "R", "P")])
def test_permuted_and_flipped_label_pairs_with_its_image(tmp_path, label_axes):
    from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

    image = ramp()
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-20, 15, 40]
    t = ornt_transform(io_orientation(affine), axcodes2ornt(label_axes))
    label_data = apply_orientation((image % 3).astype(np.uint8), t)
    label_affine = affine @ inv_ornt_aff(t, image.shape)
    img = read_scan(save_nifti(tmp_path / "img.nii.gz", image, affine))
    lab = read_scan(save_nifti(tmp_path / "lab.nii.gz", label_data, label_affine), mask=True)
    assert lab.orientation == "".join(label_axes) and img.orientation == "RAS"
    assert check_same_geometry(img, lab) is None
    np.testing.assert_array_equal(lab.array, img.array.astype(np.int64) % 3)
    # the same label as an LPS-stored NRRD file pairs just as well
    itk = read_scan(save_itk(tmp_path / "lab.nrrd", label_data, label_affine), mask=True)
    assert check_same_geometry(img, itk) is None
    np.testing.assert_array_equal(itk.array, lab.array)


def test_mismatched_geometry_is_reported_not_resampled(tmp_path):
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    img = read_scan(save_nifti(tmp_path / "img.nii", ramp((64, 64, 31)), affine))
    short = read_scan(save_nifti(tmp_path / "short.nii", np.zeros((64, 64, 30), np.uint8), affine), mask=True)
    assert check_same_geometry(img, short) == "label is 64x64x30 but image is 64x64x31"
    moved = affine.copy()
    moved[2, 3] = 2.5
    shifted = read_scan(save_nifti(tmp_path / "moved.nii", np.zeros((64, 64, 31), np.uint8), moved), mask=True)
    assert check_same_geometry(img, shifted) == "label affine differs from the image's by 2.5 mm"
    assert check_same_geometry(img, shifted, tol=3.0) is None


# --- multi-channel and 2-D ---------------------------------------------------------------------

def test_short_4th_axis_is_channels(tmp_path):
    data = np.stack([ramp(), ramp() + 1000, ramp() + 2000], axis=-1)
    vol = read_scan(save_nifti(tmp_path / "c.nii.gz", data))
    assert vol.array.shape == (3, 7, 5, 6) and vol.channels == 3 and vol.shape == (7, 5, 6)
    expect_same_voxels(vol, data, OBLIQUE)
    with pytest.raises(DataError, match="label file holds 3 volumes"):
        read_scan(tmp_path / "c.nii.gz", mask=True)
    vec = sitk.GetImageFromArray(np.stack([ramp(), ramp() + 1], -1), isVector=True)
    sitk.WriteImage(vec, str(tmp_path / "v.nrrd"))
    vol = read_scan(tmp_path / "v.nrrd")
    assert vol.array.shape == (2, 5, 6, 7) and np.all(vol.array[1] - vol.array[0] == 1)


def test_channel_files_stack_and_must_share_geometry(tmp_path):
    a = save_nifti(tmp_path / "a_0000.nii", ramp())
    b = save_nifti(tmp_path / "a_0001.nii", ramp() + 5)
    vol = read_channels([a, b])
    assert vol.array.shape == (2, 7, 5, 6) and np.all(vol.array[1] - vol.array[0] == 5)
    assert vol.source == [str(a), str(b)]
    moved = OBLIQUE.copy()
    moved[:3, 3] += [3.0, 0.0, 4.0]
    c = save_nifti(tmp_path / "a_0002.nii", ramp(), moved)
    with pytest.raises(DataError, match="channel 1 affine differs from the image's by 5 mm"):
        read_channels([a, c])
    d = save_nifti(tmp_path / "a_0003.nii", ramp((5, 6, 8)))
    with pytest.raises(DataError, match="channel 2 is 6x5x8 but image is 6x5x7"):
        read_channels([a, b, d])


def test_2d_files_and_arrays_become_one_slice(tmp_path):
    img = sitk.GetImageFromArray(ramp((4, 6), np.uint8))
    sitk.WriteImage(img, str(tmp_path / "flat.mha"))
    vol = read_scan(tmp_path / "flat.mha", mask=True)
    assert vol.shape == (1, 4, 6) and orientation_code(vol.affine) == "SPL"
    np.testing.assert_array_equal(vol.array[0], ramp((4, 6), np.uint8))
    flat = Volume.from_2d(ramp((4, 6)))
    assert flat.array.shape == (1, 4, 6) and orientation_code(flat.affine) == "SPL"
    assert flat.spacing == (1.0, 1.0, 1.0) and flat.native is None
    rgb = Volume.from_2d(np.zeros((4, 6, 3), np.uint8))
    assert rgb.array.shape == (3, 1, 4, 6) and rgb.channels == 3
    assert check_same_geometry(flat, Volume.from_2d(np.zeros((4, 6), np.uint8))) is None


def test_metaimage_modality_and_detached_data_file(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(ramp()), str(tmp_path / "ct.mhd"))
    header = (tmp_path / "ct.mhd").read_text()  # ITK reads MetaImage's Modality but never writes it
    (tmp_path / "ct.mhd").write_text(header.replace("ElementSpacing", "Modality = MET_MOD_CT\nElementSpacing"))
    vol = read_scan(tmp_path / "ct.mhd")
    assert vol.modality == "CT" and vol.format == "mhd" and vol.orientation == "LPS"
    assert vol.source == [str(tmp_path / "ct.mhd"), str(tmp_path / "ct.raw")]
    (tmp_path / "ct.raw").unlink()
    with pytest.raises(DataError, match="its data file ct.raw is missing"):
        read_scan(tmp_path / "ct.mhd")


# --- broken files ------------------------------------------------------------------------------

def _gz_bytes(tmp_path: Path) -> bytes:
    data = np.random.default_rng(0).normal(size=(20, 20, 20)).astype(np.float32)
    return save_nifti(tmp_path / "good.nii.gz", data).read_bytes()


@pytest.mark.parametrize("damage", ["cut-half", "cut-trailer", "crc"])
def test_truncated_or_corrupt_gzip(tmp_path, damage):
    raw = bytearray(_gz_bytes(tmp_path))
    if damage == "cut-half":
        raw = raw[:len(raw) // 2]
    elif damage == "cut-trailer":
        raw = raw[:-4]  # nibabel alone never reads this far, so it would not notice
    else:
        raw[-8] ^= 0xFF  # the stored CRC-32
    (tmp_path / "bad.nii.gz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=GZIP_REASON):
        read_scan(tmp_path / "bad.nii.gz")


def test_misnamed_and_truncated_nifti(tmp_path):
    good = _gz_bytes(tmp_path)
    (tmp_path / "plain.nii.gz").write_bytes(gzip.decompress(good))
    (tmp_path / "zipped.nii").write_bytes(good)
    (tmp_path / "short.nii").write_bytes(gzip.decompress(good)[:-100])
    (tmp_path / "junk.nii").write_bytes(b"not a nifti header" * 40)
    cases = {"plain.nii.gz": "not gzip-compressed although named .gz",
             "zipped.nii": r"gzip-compressed data in a .nii file \(should be named .nii.gz\)",
             "short.nii": r"file is truncated \(less voxel data than the header says\)",
             "junk.nii": "not a NIfTI file"}
    for name, reason in cases.items():
        with pytest.raises(DataError, match=reason) as info:
            read_scan(tmp_path / name)
        assert str(tmp_path) not in str(info.value)


def test_broken_itk_files(tmp_path):
    save_itk(tmp_path / "good.nrrd", ramp((20, 20, 20)))
    raw = (tmp_path / "good.nrrd").read_bytes()
    (tmp_path / "cut.nrrd").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "junk.nrrd").write_bytes(b"garbage" * 30)
    save_itk(tmp_path / "good.mha", ramp((20, 20, 20)), compress=False)
    (tmp_path / "cut.mha").write_bytes((tmp_path / "good.mha").read_bytes()[:-500])
    for name, reason in {"cut.nrrd": GZIP_REASON, "junk.nrrd": r"not a valid NRRD file \(unrecognised header\)",
                         "cut.mha": r"cannot read the MHA file \(truncated or corrupt data\)"}.items():
        with pytest.raises(DataError, match=reason) as info:
            read_scan(tmp_path / name)
        assert str(tmp_path) not in str(info.value)


@pytest.mark.parametrize("name", ["e.nii.gz", "e.nii", "e.nrrd", "e.mha"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=r"empty file \(0 bytes\)"):
        read_scan(tmp_path / name)


def test_nan_image_and_non_integer_labels(tmp_path):
    data = ramp(dtype=np.float32)
    data[1, 2, 3] = data[0, 0, 1] = np.nan
    with pytest.raises(DataError, match=r"2 voxel\(s\) are NaN or infinite"):
        read_scan(save_nifti(tmp_path / "nan.nii", data))
    labels = np.zeros((4, 4, 4), np.float32)
    labels[1, 1, 1] = 1.5
    with pytest.raises(DataError, match=r"label values are not integers \(e.g. 1.5\)"):
        read_scan(save_nifti(tmp_path / "half.nii.gz", labels), mask=True)
    labels[1, 1, 1] = 2.0  # whole numbers stored as float are fine
    vol = read_scan(save_nifti(tmp_path / "whole.nii.gz", labels), mask=True)
    assert vol.array.dtype == np.uint8 and vol.array.max() == 2


def test_missing_or_unsupported_file(tmp_path):
    with pytest.raises(DataError, match="cannot open file"):
        read_scan(tmp_path / "nothing.nii.gz")
    with pytest.raises(DataError, match="not a volume file"):
        read_scan(NIBABEL_DATA / "nifti1.hdr")


# --- file names --------------------------------------------------------------------------------

def test_volume_names_and_listing(tmp_path):
    assert volume_stem("a/case_001.nii.gz") == "case_001"
    assert volume_stem("a.b.NRRD") == "a.b" and volume_stem("x.mhd") == "x" and volume_stem("y.txt") == "y"
    for name in ["b.nii.gz", "a.nrrd", "c.MHA", "d.mhd", "d.raw", "._b.nii.gz", ".hidden.nii", "notes.txt"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.nii").mkdir()
    assert [p.name for p in volume_files(tmp_path)] == ["a.nrrd", "b.nii.gz", "c.MHA", "d.mhd"]
    assert is_volume_file(tmp_path / "b.nii.gz") and not is_volume_file(tmp_path / "._b.nii.gz")
    assert not is_volume_file(tmp_path / "dir.nii") and not is_volume_file(tmp_path / "d.raw")
