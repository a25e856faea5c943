"""3-D scans end to end in the core: layouts, geometry, the disk cache, slices, 3-D Dice, training,
prediction written back in the scan's own geometry."""

import shutil

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import torch

from segstudio.config import DataConfig
from segstudio.data import inspect_dataset, load_dataset
from segstudio.preprocess.plan import Plan
from segstudio.preprocess.slicing import put_slice, take_slice
from segstudio.io.registry import read_scan
from segstudio.errors import DataError
from segstudio.training import events as ev
from segstudio.training.metrics import VolumeDice, dice_per_class
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    from segstudio.data.sample_volumes import sample_volumes

    images, labels = sample_volumes(tmp_path_factory.mktemp("volumes"))
    return images.parent


@pytest.fixture
def copy(volumes, tmp_path):
    shutil.copytree(volumes, tmp_path / "ds")
    return tmp_path / "ds"


def test_a_decathlon_root_loads_as_scans(volumes):
    data, report = load_dataset(DataConfig(str(volumes)), 32)
    assert data.volumetric and len(data.volumes) == 6 and report.layout == "decathlon"
    assert len(data) == sum(v.shape[0] for v in data.volumes) == report.n_train + report.n_valid
    assert data.codes == ["background", "liver", "kidney"]
    assert isinstance(data.images, np.memmap) and data.images.shape[1:] == (1, 32, 32)
    valid = {data.volumes[k].name for k in data.item_volume[data.valid_idx]}
    train = {data.volumes[k].name for k in data.item_volume[data.train_idx]}
    assert valid and train and not valid & train  # split by scan
    assert all(v.modality == "CT" for v in data.volumes) and "/" in data.window  # one HU window
    assert "liver" in report.format() and "0.8x0.8x2.5 mm" in report.format()


def test_labels_stored_in_another_orientation_line_up(volumes):
    """Cases 2 and 5 store their labels permuted and flipped: in the cache, liver and kidney
    pixels have the organ's intensity in every scan (liver +80 HU, kidney +160 HU)."""
    data, _ = load_dataset(DataConfig(str(volumes)), 64)
    for v in data.volumes:
        image = data.images[v.first:v.first + v.n_slices, 0].astype(float)
        mask = data.masks[v.first:v.first + v.n_slices]
        liver, kidney, rest = image[mask == 1].mean(), image[mask == 2].mean(), np.median(image[mask == 0])
        assert kidney - liver > 60 and liver - rest > 30, v.name


def test_a_second_load_opens_the_cache(volumes, monkeypatch):
    first, _ = load_dataset(DataConfig(str(volumes)), 40)
    import segstudio.data.volume_dataset as vd

    monkeypatch.setattr(vd, "read_scan", lambda *a, **k: pytest.fail("a scan was read again"))
    second, report = load_dataset(DataConfig(str(volumes), valid_pct=0.4), 40)
    assert np.array_equal(first.images, second.images) and np.array_equal(first.masks, second.masks)
    assert report.split.startswith("by scan: 2 of 6")  # the split follows the current settings


def test_geometry_problems_are_reported_not_resampled(copy):
    label = nib.load(copy / "labelsTr" / "case_001.nii.gz")
    nib.save(nib.Nifti1Image(np.asarray(label.dataobj)[:, :, :-1], label.affine),
             copy / "labelsTr" / "case_001.nii.gz")  # one slice short
    label = nib.load(copy / "labelsTr" / "case_003.nii.gz")
    shifted = label.affine.copy()
    shifted[:3, 3] += (4.0, 0, 0)
    nib.save(nib.Nifti1Image(np.asarray(label.dataobj), shifted), copy / "labelsTr" / "case_003.nii.gz")
    (copy / "labelsTr" / "case_004.nii.gz").write_bytes(
        (copy / "labelsTr" / "case_004.nii.gz").read_bytes()[:500])  # truncated
    data, report = load_dataset(DataConfig(str(copy)), 32)
    assert sorted(v.name for v in data.volumes) == ["case_002", "case_005", "case_006"]
    reasons = {p.path: p.reason for p in report.problems()}
    assert "but image is 64x64x38" in reasons["labelsTr/case_001.nii.gz"]
    assert "differs from the image's by 4 mm" in reasons["labelsTr/case_003.nii.gz"]
    assert "gzip" in reasons["labelsTr/case_004.nii.gz"]


def test_coronal_slices_put_superior_up(volumes):
    data, _ = load_dataset(DataConfig(str(volumes), axis="coronal"), 32)
    v = data.volumes[0]
    assert v.n_slices == v.shape[1]  # across Y
    marker = np.zeros(v.shape)
    marker[-1] = 1  # the most superior axial plane
    assert take_slice(marker, 1, 0)[0].all()  # is the top row of a coronal slice
    back = np.zeros(v.shape)
    put_slice(back, 1, 3, take_slice(marker, 1, 3))
    assert np.array_equal(back[:, 3], marker[:, 3])


def test_neighbouring_slices_are_clamped_to_their_scan(volumes):
    data, _ = load_dataset(DataConfig(str(volumes), context=1), 32)
    v0, v1 = data.volumes[:2]
    rows = data.neighbours(np.array([v0.first, v1.first - 1, v1.first + 1]))
    assert rows.tolist() == [[v0.first, v0.first, v0.first + 1],
                             [v1.first - 2, v1.first - 1, v1.first - 1],
                             [v1.first, v1.first + 1, v1.first + 2]]


def test_volume_dice_is_per_scan_in_3d():
    """Two scans, three slices each; Dice per scan from the summed counts, then the mean."""
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, (6, 8, 8))
    pred = np.where(rng.random((6, 8, 8)) < 0.8, target, rng.integers(0, 3, (6, 8, 8)))
    metric = VolumeDice(3, np.array([4, 4, 4, 9, 9, 9]))
    for rows in (slice(0, 4), slice(4, 6)):  # batches cross the scans' boundary
        logits = torch.nn.functional.one_hot(torch.from_numpy(pred[rows]), 3).permute(0, 3, 1, 2).float()
        metric.accumulate(type("L", (), {"pred": logits, "y": torch.from_numpy(target[rows])})())
    by_hand = [dice_per_class(pred[s], target[s], 3) for s in (slice(0, 3), slice(3, 6))]
    assert np.allclose(metric.per_volume, by_hand)
    assert metric.value == pytest.approx(np.mean([d[1:].mean() for d in by_hand]))
    assert np.allclose(metric.per_class, np.mean(by_hand, axis=0))


def test_empty_slices_are_drawn_at_their_share(volumes):
    from segstudio.training.loaders import CachedDL, CachedPairs

    data, _ = load_dataset(DataConfig(str(volumes)), 32)
    pairs = CachedPairs(data, data.train_idx)
    empty = int((~data.has_foreground[data.train_idx]).sum())
    assert empty > 20
    dl = CachedDL(pairs, empty_share=0.25, bs=4, shuffle=True)
    epochs = [list(dl.get_idxs()) for _ in range(2)]
    n_full = int(data.has_foreground[data.train_idx].sum())
    assert len(epochs[0]) == len(epochs[1]) == n_full + round(0.25 * empty) == dl.n
    drawn = [{i for i in e if not data.has_foreground[data.train_idx[i]]} for e in epochs]
    assert drawn[0] != drawn[1]  # drawn anew each epoch


@pytest.mark.slow
def test_training_on_scans_learns_and_predicts_in_their_geometry(volumes, tmp_path):
    from segstudio.inference import Predictor
    from segstudio.training.session import TrainingSession

    events = []
    cfg = tiny_config(tmp_path, data=DataConfig(str(volumes), context=1), epochs=4, bs=8)
    final = TrainingSession().run(cfg, events.append)
    assert isinstance(final, ev.Finished), final
    assert next(e for e in events if isinstance(e, ev.Started)).volumetric
    assert final.best_dice > 0.5, [e.dice_mean for e in events if isinstance(e, ev.EpochEnd)]
    predictor = Predictor.load(final.run_dir, device="cpu")
    assert predictor.meta["volumes"]["context"] == 1 and predictor.meta["n_in"] == 3
    scans = tmp_path / "scans"  # two of the six: predicting a folder of scans, in less time
    scans.mkdir()
    for name in ("case_001_0000.nii.gz", "case_005_0000.nii.gz"):
        shutil.copy(volumes / "imagesTr" / name, scans / name)
    out = tmp_path / "pred"
    report = predictor.predict_folder(scans, out)
    assert len(report.written) == 2 and report.tables
    pred = nib.load(out / "case_005.nii.gz")  # its label is stored LPS, its image RAS
    image = nib.load(volumes / "imagesTr" / "case_005_0000.nii.gz")
    assert pred.shape == image.shape and np.allclose(pred.affine, image.affine)
    truth = read_scan(volumes / "labelsTr" / "case_005.nii.gz", mask=True).array
    got = read_scan(out / "case_005.nii.gz", mask=True).array
    assert dice_per_class(got, truth, 3)[1] > 0.5
    lines = (out / "volumes.csv").read_text().splitlines()
    assert lines[0] == "case,class,voxels,ml" and len(lines) == 1 + 2 * 2


def test_nrrd_scans_are_written_back_as_nrrd(tmp_path):
    from segstudio.inference.outputs import PredictionFolder
    from segstudio.inference.predictor import PredictReport
    from segstudio.inference.volumes import predict_volume_folder, scan_layout

    scans = tmp_path / "scans"
    scans.mkdir()
    img = sitk.GetImageFromArray(np.random.default_rng(0).normal(0, 1, (5, 12, 10)).astype(np.float32))
    img.SetSpacing((0.7, 0.9, 3.0))
    img.SetOrigin((10.0, -4.0, 2.0))
    img.SetDirection((0, 1, 0, -1, 0, 0, 0, 0, 1))  # rotated in-plane
    sitk.WriteImage(img, str(scans / "knee.nrrd"))

    class Half:
        codes = ["background", "bone"]
        plan = Plan.from_meta({"window": "auto", "n_in": 3, "codes": codes, "size": 16})
        tta = False

        def probabilities_resized(self, batch, flip=False):
            x = torch.from_numpy(batch.astype(np.float32))[:, :1]
            return torch.cat([x < 128, x >= 128], dim=1).float()

    report = PredictReport()
    predict_volume_folder(Half(), scan_layout(scans), PredictionFolder(tmp_path / "out"), report, None, None)
    out = sitk.ReadImage(str(tmp_path / "out" / "knee.nrrd"))
    assert out.GetSize() == img.GetSize() and np.allclose(out.GetSpacing(), img.GetSpacing())
    assert np.allclose(out.GetOrigin(), img.GetOrigin()) and np.allclose(out.GetDirection(), img.GetDirection())


def test_inspect_lists_unreadable_scans_and_a_missing_label_is_not_a_problem(copy):
    (copy / "imagesTr" / "case_006_0000.nii.gz").write_bytes(b"\x1f\x8b\x08 truncated")
    (copy / "labelsTr" / "case_002.nii.gz").unlink()
    report = inspect_dataset(DataConfig(str(copy)))
    assert report.n_unlabelled == 1 and "Unlabelled:    1" in report.format()
    assert [p.path for p in report.problems()] == ["imagesTr/case_006_0000.nii.gz"]
    assert len(report.volumes) == 4
    counts = dict(report.accounting())  # every scan in one line
    assert counts == {"usable scans": 4, "unlabelled": 1, "unreadable": 1} and sum(counts.values()) == report.n_images
    assert "Images:        6 = 4 usable scans + 1 unlabelled + 1 unreadable" in report.format()


def test_a_folder_holding_images_and_labels_of_scans(copy):
    """A root with images/ and labels/ of scans (no Decathlon names) reads them as two folders;
    the Decathlon root itself is still a Decathlon layout."""
    (copy / "imagesTr").rename(copy / "images")
    (copy / "labelsTr").rename(copy / "labels")
    data, report = load_dataset(DataConfig(str(copy)), 32)
    assert data.volumetric and len(data.volumes) == 6 and report.layout == "folders"
    assert report.images_dir == str(copy / "images") and data.masks_dir == str(copy / "labels")
    assert report.notes[0] == "ds/ holds images/ and labels/: read as the images and masks folders"


def test_no_usable_scan_is_a_data_error_with_the_report(copy):
    for p in (copy / "labelsTr").iterdir():
        p.write_bytes(b"not a volume")
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(str(copy)), 32)
    assert info.value.report is not None and len(info.value.report.unreadable) == 6


def write_ct_series(folder, n=6, size=24, patient="PAT-1"):
    """A CT series whose slices show a bright square that grows along the series (its labels
    follow the intensities: value 1 where the image is 200 HU)."""
    from pydicom.uid import generate_uid

    from tests.makers import write_dicom

    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths, masks = [], []
    for k in range(n):
        hu = np.full((size, size), -800, np.int16)
        hu[4:8 + 2 * k, 6:14] = 200
        masks.append((hu == 200).astype(np.uint8))
        paths.append(write_dicom(
            folder / f"IM{(5 * k + 2) % n:04d}", (hu + 1024).astype(np.int16), patient_id=patient,
            slope=1, intercept=-1024, StudyInstanceUID=study, SeriesInstanceUID=series,
            FrameOfReferenceUID=frame, ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
            ImagePositionPatient=[0, 0, 3.0 * k], PixelSpacing=[0.7, 0.7], SliceThickness=3.0,
            InstanceNumber=k + 1, SeriesNumber=1, StudyID="1", StudyDate="20240101", StudyTime="120000",
            AccessionNumber="", ReferringPhysicianName="", PatientBirthDate="", PatientSex="O"))
    return paths, masks


@pytest.mark.slow
def test_dicom_series_folders_are_scans_with_seg_or_volume_labels(tmp_path):
    """Case a: a DICOM SEG inside its folder; case b: a NIfTI label in the masks folder."""
    from segstudio.io import dicom_seg, dicom_series
    from segstudio.data.layouts import detect_layout
    from segstudio.io.registry import write_label_like

    root, masks_dir = tmp_path / "series", tmp_path / "labels"
    paths_a, masks_a = write_ct_series(root / "case_a")
    dicom_seg.write(paths_a, masks_a, ["background", "lesion"], root / "case_a" / "seg.dcm")
    write_ct_series(root / "case_b", patient="PAT-2")
    scan_b = dicom_series.read(root / "case_b")
    assert scan_b.shape == (6, 24, 24) and scan_b.modality == "CT" and np.isclose(scan_b.spacing[0], 3.0)
    assert scan_b.array.max() == 200 and scan_b.array.min() == -800  # HU
    masks_dir.mkdir()
    write_label_like((scan_b.array == 200).astype(np.uint8), scan_b, masks_dir / "case_b.nii.gz")
    for masks, case in ((None, "case_a"), (masks_dir, "case_b")):
        layout = detect_layout(root, masks)
        assert layout.kind == "dicom" and [c.name for c in layout.cases if c.label] == [case]
    data, report = load_dataset(DataConfig(str(root)), 24)  # labels inside the folders: case a
    assert data.volumetric and [v.name for v in data.volumes] == ["case_a"] and report.n_unlabelled == 1
    assert data.codes == ["background", "lesion"]
    image, mask = data.images[:, 0].astype(int), data.masks
    assert image[mask == 1].min() > 100 and image[mask == 0].max() < 50  # the SEG lines up
    data, _ = load_dataset(DataConfig(str(root), str(masks_dir)), 24)
    image, mask = data.images[:, 0].astype(int), data.masks
    assert [v.name for v in data.volumes] == ["case_b"] and image[mask == 1].min() > 100


def test_dicom_series_predictions_are_a_seg_and_a_nifti(tmp_path):
    import highdicom as hd

    from segstudio.inference.outputs import PredictionFolder
    from segstudio.inference.predictor import PredictReport
    from segstudio.inference.volumes import predict_volume_folder, scan_layout

    root = tmp_path / "series"
    paths, masks = write_ct_series(root / "case_a")

    class Bright:
        codes = ["background", "lesion"]
        plan = Plan.from_meta({"window": "400/40", "n_in": 3, "codes": codes, "size": 24,
                               "volumes": {"modalities": ["CT"]}})
        tta = False

        def probabilities_resized(self, batch, flip=False):
            x = torch.from_numpy(batch.astype(np.float32))[:, :1]
            return torch.cat([x < 200, x >= 200], dim=1).float()

    report = PredictReport()
    predict_volume_folder(Bright(), scan_layout(root), PredictionFolder(tmp_path / "out"), report, None, None, nifti=True)
    [seg_path] = report.dicom_segs
    seg = hd.seg.segread(seg_path)
    for path, mask in zip(paths, masks):
        uid = pydicom_uid(path)
        got = seg.get_pixels_by_source_instance([uid], combine_segments=True, ignore_spatial_locations=True)[0]
        assert np.array_equal(got, mask)
    nifti = read_scan(tmp_path / "out" / "case_a.nii.gz", mask=True)
    assert nifti.shape == (6, 24, 24) and nifti.array.sum() == sum(m.sum() for m in masks)


def pydicom_uid(path):
    import pydicom

    return pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID


def test_a_time_series_among_scans_is_one_problem(copy):
    image = nib.load(copy / "imagesTr" / "case_006_0000.nii.gz")
    series = np.repeat(np.asarray(image.dataobj)[..., None], 10, axis=-1)
    nib.save(nib.Nifti1Image(series, image.affine), copy / "imagesTr" / "case_006_0000.nii.gz")
    data, report = load_dataset(DataConfig(str(copy)), 32)
    assert len(data.volumes) == 5
    [problem] = report.problems()
    assert problem.path == "imagesTr/case_006_0000.nii.gz" and "time series" in problem.reason


def test_the_cache_follows_dataset_json_and_dicom_slices(copy, tmp_path):
    import json

    data, _ = load_dataset(DataConfig(str(copy)), 32)
    assert data.codes[1] == "liver"
    meta = json.loads((copy / "dataset.json").read_text())
    meta["labels"]["1"] = "hepar"
    (copy / "dataset.json").write_text(json.dumps(meta))
    data, _ = load_dataset(DataConfig(str(copy)), 32)
    assert data.codes[1] == "hepar"
    root = tmp_path / "series"
    paths, masks = write_ct_series(root / "case_a")
    from segstudio.io import dicom_seg

    dicom_seg.write(paths, masks, ["background", "lesion"], root / "case_a" / "seg.dcm")
    first, _ = load_dataset(DataConfig(str(root)), 24)
    first = np.array(first.images)
    import pydicom

    ds = pydicom.dcmread(paths[0])
    ds.RescaleIntercept = -724  # every value 300 HU higher, rewritten in place
    ds.save_as(paths[0])
    second, _ = load_dataset(DataConfig(str(root)), 24)
    assert not np.array_equal(first, np.array(second.images))


def test_a_model_for_other_channels_reports_the_scans(volumes, tmp_path):
    from segstudio.inference.outputs import PredictionFolder
    from segstudio.inference.predictor import PredictReport
    from segstudio.inference.volumes import predict_volume_folder, scan_layout

    class TwoChannels:
        codes = ["background", "liver"]
        plan = Plan.from_meta({"window": "auto", "n_in": 6, "codes": codes, "size": 16,
                               "volumes": {"channels": 2, "context": 1}})
        tta = False

    report = PredictReport()
    predict_volume_folder(TwoChannels(), scan_layout(volumes / "imagesTr"), PredictionFolder(tmp_path / "out"),
                          report, None, None)
    assert not report.written and len(report.problems) == 6
    assert "trained on scans of 2" in report.problems[0].reason
