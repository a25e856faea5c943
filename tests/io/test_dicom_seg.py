"""DICOM SEG: exporting predictions (highdicom reads them back) and SEG files as training masks."""

import highdicom as hd
import numpy as np
import pydicom
import pytest

from segstudio.config import DataConfig
from segstudio.data import load_dataset
from segstudio.errors import DataError
from segstudio.io import dicom_seg

CODES = ["background", "liver", "kidney"]


def _masks(n, h=16, w=16):
    masks = [np.zeros((h, w), np.uint8) for _ in range(max(n, 3))]
    masks[1][2:6, 2:6] = 1
    masks[2][8:12, 8:12] = 2
    masks[2][2:4, 2:4] = 1
    return masks[:n]


@pytest.mark.parametrize("kind", ["BINARY", "LABELMAP"])
def test_export_reads_back_with_segments_and_references(tmp_path, mk, kind):
    paths = mk.series(tmp_path, 4)
    masks = _masks(4)
    out = dicom_seg.write(paths, masks, CODES, tmp_path / "pred_seg.dcm", segmentation_type=kind)
    seg = hd.seg.segread(out)
    assert seg.segmentation_type.value == kind
    assert [seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers] == CODES[1:]
    algorithm = seg.get_segment_description(1).SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "segstudio"
    sources = [pydicom.dcmread(p) for p in paths]
    assert {u[2] for u in seg.get_source_image_uids()} == {ds.SOPInstanceUID for ds in sources}
    assert seg.SeriesInstanceUID != sources[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    for ds, mask in zip(sources, masks):
        back = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], combine_segments=True,
                                                 ignore_spatial_locations=True)
        np.testing.assert_array_equal(back[0], mask)


def test_export_refuses_mismatches(tmp_path, mk):
    a = mk.series(tmp_path, 2, names=["a1.dcm", "a2.dcm"])
    b = mk.series(tmp_path, 1, names=["b1.dcm"])
    with pytest.raises(DataError, match="come from 2 series"):
        dicom_seg.write(a + b, _masks(3), CODES, tmp_path / "x.dcm")
    with pytest.raises(DataError, match="1 mask\\(s\\) for 2 source frame\\(s\\)"):
        dicom_seg.write(a, _masks(1), CODES, tmp_path / "x.dcm")
    with pytest.raises(DataError, match="size of its source"):
        dicom_seg.write(a, _masks(2, 8, 8), CODES, tmp_path / "x.dcm")
    with pytest.raises(DataError, match="Mask value 2 has no class name"):
        dicom_seg.write(a[:1] + b[:0], [np.full((16, 16), 2, np.uint8)], CODES[:2], tmp_path / "x.dcm")


def test_seg_masks_train_by_referenced_uids(data_dirs, mk):
    images, masks = data_dirs
    paths = mk.series(images, 4)                  # file names unrelated to the SEG's name
    dicom_seg.write(paths, _masks(4), CODES, masks / "segmentation.dcm")
    data, report = load_dataset(DataConfig(str(images), str(masks)), 16)
    assert data.names == [p.stem for p in paths]  # slice order
    assert data.codes == CODES and report.mask_convention == "DICOM SEG (2 segment label(s))"
    np.testing.assert_array_equal(data.masks, np.stack(_masks(4)))
    assert not report.problems() and any("DICOM SEG segment labels" in n for n in report.notes)


def test_seg_and_images_in_one_folder_and_unmatched_seg(tmp_path, mk):
    folder = tmp_path / "all"
    folder.mkdir()
    paths = mk.series(folder, 3)
    dicom_seg.write(paths[:2], _masks(2), CODES, folder / "seg_part.dcm")
    other = mk.series(tmp_path, 1, names=["other.dcm"])
    dicom_seg.write(other, _masks(1), CODES[:2], folder / "orphan_seg.dcm")
    data, report = load_dataset(DataConfig(str(folder), str(folder)), 16)
    assert data.names == [p.stem for p in paths[:2]]
    assert report.unmatched_images == [paths[2].name]
    assert report.unmatched_masks == ["orphan_seg.dcm"]


def test_seg_as_image_is_explained(tmp_path, mk):
    from segstudio.io.registry import read_image

    paths = mk.series(tmp_path, 1)
    out = dicom_seg.write(paths, [np.zeros((16, 16), np.uint8)], CODES[:2], tmp_path / "s.dcm")
    with pytest.raises(DataError, match="DICOM SEG \\(a segmentation, not an image\\)"):
        read_image(out)


def test_predict_folder_writes_segs_for_files_without_meta_and_never_raises(tmp_path, mk):
    import torch
    from fastai.vision.learner import create_unet_model

    from segstudio.inference import Predictor
    from segstudio.model.backends import TorchBackend
    from segstudio.model.weights import architecture

    folder = tmp_path / "nometa"
    folder.mkdir()
    for p in mk.series(tmp_path, 3):  # the same series, saved as bare datasets (no preamble, no meta)
        ds = pydicom.dcmread(p)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(folder / p.name, enforce_file_format=False, implicit_vr=True, little_endian=True)
    (folder / "broken.dcm").write_bytes(b"DICM" * 10)
    meta = {"arch": "resnet18", "n_out": 3, "n_in": 3, "size": 32, "codes": CODES, "mean": [0.5] * 3,
            "std": [0.25] * 3, "window": "auto"}
    model = create_unet_model(architecture("resnet18"), 3, (32, 32), pretrained=False, n_in=3)
    predictor = Predictor(TorchBackend(model, meta, torch.device("cpu")))
    report = predictor.predict_folder(folder, tmp_path / "out", dicom_seg=True)
    assert len(report.written) == 3 and [p.path for p in report.problems] == ["broken.dcm"]
    assert len(report.dicom_segs) == 1
    seg = hd.seg.segread(report.dicom_segs[0])
    assert len(seg.get_source_image_uids()) == 3


@pytest.mark.parametrize("name, reason", [("JPGExtended.dcm", "can be read back"),
                                          ("rtdose.dcm", "lack SharedFunctionalGroupsSequence")])
def test_sources_that_give_no_usable_seg_are_refused_in_words(name, reason, tmp_path):
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    masks = [np.ones((ds.Rows, ds.Columns), np.uint8) for _ in range(int(ds.get("NumberOfFrames", 1) or 1))]
    with pytest.raises(DataError, match=reason):
        dicom_seg.write([path], masks, CODES[:2], tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()
