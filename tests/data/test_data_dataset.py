"""load_dataset / inspect_dataset: cache, split, report, bad files, cancel."""

import json

import numpy as np
import pytest
from PIL import Image

from segstudio.config import DataConfig
from segstudio.data import inspect_dataset, load_dataset
from segstudio.errors import Cancelled, DataError


def _pairs(images, masks, mk, n, h=16, w=16):
    for i in range(n):
        mk.png(images / f"p{i:02d}.png", mk.gradient(h, w))
        mk.png(masks / f"p{i:02d}.png", mk.square(h, w))


def test_cache_shapes_and_split(data_dirs, mk):
    images, masks = data_dirs
    _pairs(images, masks, mk, 10, 20, 30)
    data, report = load_dataset(DataConfig(str(images), str(masks), valid_pct=0.3), 8)
    assert data.images.shape == (10, 1, 8, 8) and data.images.dtype == np.uint8
    assert data.masks.shape == (10, 8, 8) and data.masks.dtype == np.uint8
    assert data.n_channels == 1 and data.size == 8 and data.window == "auto"
    assert data.orig_sizes == [(20, 30)] * 10 and data.frames == [0] * 10
    assert len(set(data.names)) == 10 and data.groups == data.names
    assert data.train_idx.dtype == np.int64 and data.valid_idx.dtype == np.int64
    assert len(data.valid_idx) == 3 and len(data.train_idx) == 7
    assert set(data.train_idx) | set(data.valid_idx) == set(range(10))
    assert report.split == "random 30% (seed 42)" and (report.n_train, report.n_valid) == (7, 3)


def test_split_depends_on_seed_only(data_dirs, mk):
    images, masks = data_dirs
    _pairs(images, masks, mk, 12)
    splits = [tuple(load_dataset(DataConfig(str(images), str(masks), split_seed=s), 8)[0].valid_idx)
              for s in (1, 1, 2, 3)]
    assert splits[0] == splits[1] and len({splits[0], splits[2], splits[3]}) > 1


def test_patient_split_keeps_patients_on_one_side(data_dirs, mk):
    images, masks = data_dirs
    for p in range(5):
        for s in range(4):
            mk.dicom(images / f"p{p}_s{s}.dcm", mk.gradient().astype(np.int16),
                     patient_id=f"PAT-{p}", window=(400, 40))
            mk.png(masks / f"p{p}_s{s}.png", mk.square())
    data, report = load_dataset(DataConfig(str(images), str(masks), valid_pct=0.2), 8)
    train = {data.groups[i] for i in data.train_idx}
    valid = {data.groups[i] for i in data.valid_idx}
    assert len(train | valid) == 5 and not train & valid
    assert len(valid) == 1 and len(data.valid_idx) == 4
    assert report.split.startswith("by patient: 1 of 5 patients")
    text = report.format() + json.dumps(report.to_dict())
    assert "PAT-" not in text and "Doe" not in text
    assert any("CT: one window for the dataset" in n and "for 20 image(s)" in n for n in report.notes)


@pytest.mark.parametrize("n,expect", [(1, (1, 0)), (2, (1, 1)), (3, (2, 1))])
def test_tiny_datasets(data_dirs, mk, n, expect):
    images, masks = data_dirs
    _pairs(images, masks, mk, n)
    data, _ = load_dataset(DataConfig(str(images), str(masks), valid_pct=0.01), 8)
    assert (len(data.train_idx), len(data.valid_idx)) == expect


def test_single_patient_splits_by_item(data_dirs, mk):
    images, masks = data_dirs
    for s in range(3):
        mk.dicom(images / f"s{s}.dcm", mk.gradient().astype(np.int16), patient_id="ONE")
        mk.png(masks / f"s{s}.png", mk.square())
    data, report = load_dataset(DataConfig(str(images), str(masks)), 8)
    assert len(data.valid_idx) == 1 and len(data.train_idx) == 2
    assert any("not independent" in n for n in report.notes)


def test_bad_files_reported_and_others_kept(data_dirs, mk):
    images, masks = data_dirs
    _pairs(images, masks, mk, 3)
    (images / "zero.png").write_bytes(b"")
    (images / "random.dcm").write_bytes(np.random.default_rng(0).bytes(3000))
    good = mk.png(images / "trunc.png", np.random.default_rng(1).integers(0, 255, (64, 64), np.uint8))
    good.write_bytes(good.read_bytes()[:300])
    mk.png(images / "png_named.dcm", mk.gradient())       # readable: content is PNG
    mk.png(images / "badmask.png", mk.gradient())
    (masks / "badmask.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    for stem in ("zero", "random", "trunc", "png_named"):
        mk.png(masks / f"{stem}_mask.png", mk.square())
    data, report = load_dataset(DataConfig(str(images), str(masks)), 8)
    assert sorted(data.names) == ["p00", "p01", "p02", "png_named"]
    reasons = {p.path: p.reason for p in report.unreadable}
    assert set(reasons) == {"images/zero.png", "images/random.dcm", "images/trunc.png",
                            "masks/badmask.png"}
    assert reasons["images/zero.png"] == "empty file (0 bytes)"
    assert "unrecognised content" in reasons["images/random.dcm"]
    assert reasons["images/trunc.png"].startswith("cannot decode PNG")
    assert all("\n" not in r for r in reasons.values())
    assert report.n_images == 8 and report.n_pairs == 4
    assert len(report.problems()) == 4 and "Problems (4)" in report.format()


def test_dicom_without_pixels_is_reported_plainly(data_dirs, mk):
    import pydicom
    images, masks = data_dirs
    _pairs(images, masks, mk, 2)
    path = mk.dicom(images / "sr.dcm", mk.gradient())
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    mk.png(masks / "sr.png", mk.square())
    _, report = load_dataset(DataConfig(str(images), str(masks)), 8)
    assert [(p.path, p.reason) for p in report.unreadable] == [
        ("images/sr.dcm", "no pixel data (CT Image Storage without pixels: truncated file?)")]


def test_size_mismatch_skips_only_that_pair(data_dirs, mk):
    images, masks = data_dirs
    _pairs(images, masks, mk, 2)
    mk.png(images / "big.png", mk.gradient(20, 20))
    mk.png(masks / "big.png", mk.square(10, 12))
    data, report = load_dataset(DataConfig(str(images), str(masks)), 8)
    assert "big" not in data.names and len(data.names) == 2
    [p] = report.size_mismatch
    assert p.path == "images/big.png" and p.reason == "image is 20x20 but mask big.png is 12x10"


def test_multiframe_dicom_image_and_mask(data_dirs, mk):
    images, masks = data_dirs
    vol = np.stack([mk.gradient().astype(np.int16) * (k + 1) for k in range(3)])
    labels = np.zeros((3, 16, 16), np.uint16)
    labels[1, :4] = 1
    labels[2, :4] = 2
    mk.dicom(images / "vol.dcm", vol, multiframe=True)
    mk.dicom(masks / "vol_seg.dcm", labels, multiframe=True, slope=5, intercept=100)  # raw values
    mk.dicom(images / "short.dcm", vol, multiframe=True)
    mk.dicom(masks / "short.dcm", labels[:2], multiframe=True)
    data, report = load_dataset(DataConfig(str(images), str(masks)), 16)
    assert data.names == ["vol#0", "vol#1", "vol#2"] and data.frames == [0, 1, 2]
    assert data.groups == ["vol"] * 3 and data.codes == ["background", "class 1", "class 2"]
    assert [int(m.max()) for m in data.masks] == [0, 1, 2]
    assert [p.reason for p in report.size_mismatch] == ["image has 3 frame(s), mask short.dcm has 2"]
    assert report.n_images == 6 and report.n_masks == 5


def test_mixed_gray_and_rgb_images_become_rgb(data_dirs, mk):
    images, masks = data_dirs
    _pairs(images, masks, mk, 1)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 2] = 200
    Image.fromarray(rgb).save(images / "c.png")
    mk.png(masks / "c.png", mk.square())
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 8)
    assert data.n_channels == 3
    gray = data.images[data.names.index("p00")]
    assert np.array_equal(gray[0], gray[1]) and np.array_equal(gray[1], gray[2])
    assert data.images[data.names.index("c"), 2].min() == 200


@pytest.mark.parametrize("which", ["images", "masks"])
def test_missing_folder(tmp_path, which):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    missing = tmp_path / "nowhere"
    cfg = DataConfig(str(tmp_path / "images"), str(tmp_path / "masks"))
    setattr(cfg, which, str(missing))
    for fn in (lambda: load_dataset(cfg, 8), lambda: inspect_dataset(cfg)):
        with pytest.raises(DataError, match=f"{which.capitalize()} folder not found: .*nowhere"):
            fn()
    with pytest.raises(DataError, match="No images folder"):
        inspect_dataset(DataConfig("", str(tmp_path)))


def test_no_usable_pairs(data_dirs, mk):
    images, masks = data_dirs
    mk.png(images / "a.png", mk.gradient())
    mk.png(masks / "b.png", mk.square())
    with pytest.raises(DataError, match="No usable image/mask pairs.*1 image.s. have no mask of the same name .first: images/a.png") as err:
        load_dataset(DataConfig(str(images), str(masks)), 8)
    assert err.value.report.unmatched_images == ["images/a.png"]  # the whole report travels along
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert report.n_pairs == 0 and report.unmatched_images == ["images/a.png"]
    assert report.unmatched_masks == ["masks/b.png"] and report.n_unlabelled == 1
    assert [p.path for p in report.problems()] == ["masks/b.png"]  # unlabelled is no problem


def test_inspect_report_and_progress(data_dirs, mk):
    images, masks = data_dirs
    _pairs(images, masks, mk, 4)
    (images / "zero.png").write_bytes(b"")
    mk.png(masks / "zero.png", mk.square())
    calls = []
    report = inspect_dataset(DataConfig(str(images), str(masks)),
                             progress=lambda d, t, m: calls.append((d, t, m)))
    assert (report.n_pairs, report.n_images, report.n_masks) == (4, 5, 5)
    assert calls[-1][:2] == (5, 5) and any(m == "Reading zero.png" for _, _, m in calls)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["classes"][1]["name"] == "foreground" and d["unreadable"][0]["path"] == "images/zero.png"
    text = report.format()
    assert "Usable pairs:  4 (3 train, 1 valid)" in text and "images/zero.png: empty file" in text


def test_cancel(data_dirs, mk):
    images, masks = data_dirs
    _pairs(images, masks, mk, 5)
    seen = []

    def stop():
        seen.append(1)
        return len(seen) > 2
    with pytest.raises(Cancelled):
        load_dataset(DataConfig(str(images), str(masks)), 8, should_stop=stop)
    assert len(seen) == 3


def test_an_image_without_a_mask_that_cannot_be_used_says_why(data_dirs, mk):
    from pydicom.data import get_testdata_file
    import shutil

    images, masks = data_dirs
    _pairs(images, masks, mk, 3)
    shutil.copy(get_testdata_file("rtplan.dcm"), images / "plan.dcm")
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert [(p.path, p.reason) for p in report.unreadable] == [("images/plan.dcm", "no pixel data (RT Plan Storage)")]
    assert "images/plan.dcm" not in report.unmatched_images


def _adds_up(report) -> None:
    """Every image item (each frame) is in exactly one line: the lines add up to the total, as
    the report's "Images:" line shows."""
    counts = dict(report.accounting())
    assert sum(counts.values()) == report.n_images, counts
    line = next(x for x in report.format().splitlines() if x.startswith("Images: "))
    assert line.split("=")[0].split()[-1] == str(report.n_images)
    assert [int(part.split()[0]) for part in line.split("=")[1].split("+")] == list(counts.values())


def test_every_frame_of_multiframe_files_is_counted_in_one_line(data_dirs, mk):
    """4 single-frame pairs and a 2-frame pair; a 5-frame image with a 1-frame mask; a 3-frame
    image and a PNG without a mask; a 2-frame image whose mask frames have another size; an
    unreadable image; a second 2-frame image of the same name: 20 images in all."""
    images, masks = data_dirs
    _pairs(images, masks, mk, 4)
    frames = lambda n, arr=mk.gradient(): np.stack([arr.astype(np.int16)] * n)  # noqa: E731
    mk.dicom(images / "dup.dcm", frames(2), multiframe=True)
    mk.dicom(masks / "dup.dcm", frames(2, mk.square(value=1)), multiframe=True)
    mk.dicom(images / "dup.dicom", frames(2), multiframe=True)  # same name: skipped
    mk.dicom(images / "multi.dcm", frames(5), multiframe=True)
    mk.png(masks / "multi.png", mk.square())
    mk.dicom(images / "lonely.dcm", frames(3), multiframe=True)
    mk.png(images / "lonely2.png", mk.gradient())
    mk.dicom(images / "small.dcm", frames(2), multiframe=True)
    mk.dicom(masks / "small.dcm", frames(2, mk.square(20, 20, 1)), multiframe=True)
    (images / "zero.png").write_bytes(b"")
    mk.png(masks / "zero.png", mk.square())
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert (report.n_images, report.n_pairs, report.n_unlabelled) == (20, 6, 4)
    assert dict(report.accounting()) == {"in usable pairs": 6, "unlabelled": 4, "unreadable": 1,
                                         "with a size mismatch": 7, "with other problems": 2}
    _adds_up(report)
    assert "Unlabelled:    4 image(s) in 2 file(s) without a mask" in report.format()
    _, loaded = load_dataset(DataConfig(str(images), str(masks)), 8)
    assert loaded.accounting() == report.accounting()


def test_pairs_none_of_which_match_do_not_say_no_problems(data_dirs, mk):
    images, masks = data_dirs
    mk.png(images / "a.png", mk.gradient())
    mk.png(images / "b.png", mk.gradient())
    text = inspect_dataset(DataConfig(str(images), str(masks))).format()
    assert "No problems found" not in text
    assert "No usable pairs: no image has a mask of the same name" in text and "_cp_masks" in text


@pytest.mark.parametrize("names", [("images", "masks"), ("Images", "labels"), ("img", "GT")])
def test_one_folder_holding_images_and_masks(tmp_path, mk, names):
    root = tmp_path / "my data"
    images, masks = root / names[0], root / names[1]
    images.mkdir(parents=True)
    masks.mkdir()
    _pairs(images, masks, mk, 3)
    (root / "README.txt").write_text("where the data came from")
    cfg = DataConfig(str(root))
    report = inspect_dataset(cfg)
    assert (report.images_dir, report.masks_dir, report.n_pairs) == (str(images), str(masks), 3)
    assert report.notes[0] == f"my data/ holds {names[0]}/ and {names[1]}/: read as the images and masks folders"
    assert f"Images folder: {images} (3 images)" in report.format()
    data, loaded = load_dataset(cfg, 8)
    assert len(data) == 3 and data.masks_dir == str(masks) and loaded.masks_dir == str(masks)
    assert loaded.notes[0] == report.notes[0]


def test_split_dataset_root_leaves_other_folders_alone(tmp_path, mk):
    from segstudio.data.discovery import split_dataset_root

    root = tmp_path / "root"
    for sub in ("images", "masks", "imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    assert split_dataset_root(str(root), "") == (str(root / "images"), str(root / "masks"),
                                                  "root/ holds images/ and masks/: read as the images and masks folders")
    assert split_dataset_root(str(root), str(root / "masks")) == (str(root), str(root / "masks"), "")  # masks given
    decathlon = tmp_path / "Task01"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (decathlon / sub).mkdir(parents=True)
    assert split_dataset_root(str(decathlon)) == (str(decathlon), "", "")
    mk.png(root / "x.png", mk.gradient())  # a folder of images itself: its subfolders are not read
    assert split_dataset_root(str(root)) == (str(root), "", "")
    mk.png(root / "x_masks.png", mk.square())  # ... unless it holds their masks (Cellpose)
    assert split_dataset_root(str(root)) == (str(root), str(root), "")
    for missing in (str(tmp_path / "nowhere"), "", str(root / "x.png")):
        assert split_dataset_root(missing) == (missing, "", "")


@pytest.mark.parametrize("which", ["images", "masks"])
def test_a_file_given_as_a_folder_says_so(tmp_path, mk, which):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    readme = tmp_path / "README.md"
    readme.write_text("# data")
    cfg = DataConfig(str(tmp_path / "images"), str(tmp_path / "masks"))
    setattr(cfg, which, str(readme))
    for fn in (lambda: load_dataset(cfg, 8), lambda: inspect_dataset(cfg)):
        with pytest.raises(DataError, match=f"^{which.capitalize()} folder is a file, not a folder: .*README.md$"):
            fn()
    with pytest.raises(DataError, match="^Images folder is a file, not a folder"):
        inspect_dataset(DataConfig(str(readme)))
