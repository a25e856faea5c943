"""Dataset-wide decisions: instance labels vs classes, CT windows vs other modalities, too few pairs."""

import numpy as np
import pytest
from PIL import Image

from segstudio.config import DataConfig
from segstudio.data import inspect_dataset, load_dataset
from segstudio.io.registry import read_image
from segstudio.preprocess.windowing import WINDOW_PRESETS, apply_window


def discs(rng, shape, n, first=1, radius=(3, 7)):
    """An instance mask: `n` non-overlapping discs numbered first.. (as cellpose/stardist write)."""
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros(shape, np.uint16)
    label = first
    for _ in range(n * 20):
        if label >= first + n:
            break
        r = rng.integers(*radius)
        cy, cx = rng.integers(r, h - r), rng.integers(r, w - r)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        grown = (yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 2) ** 2
        if mask[grown].any():
            continue
        mask[disc] = label
        label += 1
    return mask


def write_pairs(images, masks, arrays, image_dtype=np.uint16):
    rng = np.random.default_rng(1)
    for i, m in enumerate(arrays):
        Image.fromarray(rng.integers(0, 4000, m.shape).astype(image_dtype)).save(images / f"t{i}.png")
        Image.fromarray(m).save(masks / f"t{i}.png")


@pytest.fixture
def nuclei(data_dirs):
    """16-bit instance masks numbered 1..k, k from 4 to 45 (one mask above 32 values)."""
    images, masks = data_dirs
    rng = np.random.default_rng(0)
    arrays = [discs(rng, (128, 128), k) for k in (4, 9, 14, 22, 30, 45)]
    write_pairs(images, masks, arrays)
    return images, masks, arrays


def test_instance_labels_become_foreground_for_every_file(nuclei):
    images, masks, arrays = nuclei
    assert max(len(np.unique(a)) for a in arrays) > 33  # one mask is beyond a class list
    data, report = load_dataset(DataConfig(str(images), str(masks)), 64)
    assert data.codes == ["background", "foreground"] and len(data.names) == len(arrays)
    assert set(np.unique(data.masks)) == {0, 1} and not report.problems()
    assert report.mask_convention.startswith("instance labels (")
    assert any("instance labels" in n and "--labels classes" in n for n in report.notes)
    order = np.argsort(data.names)
    big = np.asarray(Image.fromarray((arrays[2] > 0).astype(np.uint8)).resize((64, 64), Image.NEAREST))
    np.testing.assert_array_equal(data.masks[order[2]], big)


def test_instance_tiles_cut_from_one_mask(data_dirs):
    """Tiles of one large instance mask: each tile holds an arbitrary subset of the ids."""
    images, masks = data_dirs
    big = discs(np.random.default_rng(3), (256, 256), 120, radius=(3, 6))
    tiles = [big[y:y + 64, x:x + 64] for y in range(0, 256, 64) for x in range(0, 256, 64)]
    write_pairs(images, masks, tiles)
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert [c.name for c in report.classes] == ["background", "foreground"]
    assert report.n_pairs == len(tiles)


def test_setting_keeps_label_values_as_classes(nuclei):
    images, masks, arrays = nuclei
    report = inspect_dataset(DataConfig(str(images), str(masks), labels="classes"))
    assert report.n_pairs == len(arrays) - 1
    [problem] = report.other
    assert problem.path == "masks/t5.png" and "46 distinct values" in problem.reason
    assert len(report.classes) == 31  # background + the values 1..30 of the others


def test_class_names_mean_classes(nuclei):
    images, masks, arrays = nuclei
    (masks / "classes.txt").write_text("\n".join(["bg"] + [f"c{i}" for i in range(40)]))
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert report.classes[1].name == "c0" and not report.mask_convention.startswith("instance")


def test_many_organs_in_changing_subsets_stay_classes(data_dirs):
    """13 organ labels, 2 to 7 per slice, each one blob at its own place (a BTCV-like set)."""
    images, masks = data_dirs
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:128, :128]
    arrays = []
    for _ in range(12):
        m = np.zeros((128, 128), np.uint8)
        for c in sorted(rng.choice(np.arange(1, 14), size=int(rng.integers(2, 8)), replace=False)):
            cy, cx = 14 + (c % 4) * 30 + rng.integers(-3, 4), 14 + (c // 4) * 30 + rng.integers(-3, 4)
            m[np.hypot(yy - cy, xx - cx) < 10] = c
        arrays.append(m)
    write_pairs(images, masks, arrays)
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert not report.mask_convention.startswith("instance") and len(report.classes) > 10


def test_instance_masks_with_equal_counts_are_still_instances(data_dirs):
    """Half the tiles hold exactly ten nuclei (the same set of values 1..10)."""
    images, masks = data_dirs
    rng = np.random.default_rng(7)
    arrays = [discs(rng, (128, 128), k) for k in (10, 10, 10, 10, 6, 14, 8, 12)]
    write_pairs(images, masks, arrays)
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert report.mask_convention.startswith("instance labels")


@pytest.mark.parametrize("kind", ["nested", "organs", "binary"])
def test_class_label_images_stay_classes(data_dirs, kind):
    """Nested tumour sub-regions (values 1, 2, 4 varying per slice), organs (the same values in
    every mask) and binary masks are not instance labels."""
    images, masks = data_dirs
    rng = np.random.default_rng(5)
    arrays = []
    yy, xx = np.mgrid[:64, :64]
    for i in range(8):
        m = np.zeros((64, 64), np.uint8)
        cy, cx = rng.integers(24, 40, 2)
        d = np.hypot(yy - cy, xx - cx)
        if kind == "nested":
            m[d < 20] = 2
            if i % 3:
                m[d < 12] = 4
            if i % 2:
                m[d < 5] = 1
        elif kind == "organs":
            m[d < 10] = 1
            m[(np.abs(yy - 10) < 4) & (np.abs(xx - 50) < 6)] = 2
            m[(np.abs(yy - 55) < 4) & (np.abs(xx - 10) < 6)] = 3
        else:
            m[d < 10] = 255
        arrays.append(m)
    write_pairs(images, masks, arrays)
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    expected = {"nested": 4, "organs": 4, "binary": 2}[kind]
    assert len(report.classes) == expected and not report.mask_convention.startswith("instance")


def test_instances_setting_reads_any_values_as_foreground(data_dirs):
    images, masks = data_dirs
    m = np.zeros((32, 32), np.uint8)
    m[:10], m[20:] = 3, 7
    write_pairs(images, masks, [m, m])
    data, report = load_dataset(DataConfig(str(images), str(masks), labels="instances"), 32)
    assert data.codes == ["background", "foreground"] and data.masks.max() == 1
    assert "chosen in the settings" in " ".join(report.notes)


def test_one_usable_pair_cannot_train_and_inspect_says_so(data_dirs, mk):
    images, masks = data_dirs
    mk.png(images / "a.png", mk.gradient())
    mk.png(masks / "a.png", mk.square())
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert report.n_pairs == 1 and "at least 2 usable image/mask pairs" in report.cannot_train
    assert "Cannot train:  training needs at least 2" in report.format()


def test_empty_folder_does_not_claim_no_problems(tmp_path):
    (tmp_path / "scan.txt").write_text("log")
    (tmp_path / "series").mkdir()
    text = inspect_dataset(DataConfig(str(tmp_path))).format()
    assert "No problems found" not in text
    assert "No image files" in text and "scan.txt" in text and "subfolder" in text


# -- windows -------------------------------------------------------------------------------------

def hu_slice(offset: int) -> np.ndarray:
    """Stored int16 values (intercept -1024): a ramp from -200 to +300 HU plus `offset`."""
    return (np.tile(np.linspace(-200, 300, 32), (32, 1)) + 1024 + offset).astype(np.int16)


def test_ct_preset_does_not_apply_to_mr(tmp_path, mk):
    mr = mk.dicom(tmp_path / "mr.dcm", (np.arange(1024).reshape(32, 32) % 700).astype(np.uint16),
                  window=(600, 300), Modality="MR")
    ct = mk.dicom(tmp_path / "ct.dcm", hu_slice(0), slope=1, intercept=-1024, window=(2000, 0))
    [mr_abdomen] = read_image(mr, WINDOW_PRESETS["abdomen"]).frames
    [mr_auto] = read_image(mr, "auto").frames
    np.testing.assert_array_equal(mr_abdomen, mr_auto)
    [ct_abdomen] = read_image(ct, WINDOW_PRESETS["abdomen"]).frames
    hu = hu_slice(0).astype(np.float32) - 1024
    np.testing.assert_array_equal(ct_abdomen, apply_window(hu, 400, 40))


def test_report_says_which_images_got_which_window(data_dirs, mk):
    images, masks = data_dirs
    for i in range(2):
        mk.dicom(images / f"ct{i}.dcm", hu_slice(0), slope=1, intercept=-1024)
        mk.dicom(images / f"mr{i}.dcm", hu_slice(0), window=(600, 300), Modality="MR")
    for i in range(2):
        for kind in ("ct", "mr"):
            mk.png(masks / f"{kind}{i}.png", mk.square(32, 32))
    report = inspect_dataset(DataConfig(str(images), str(masks), window="abdomen"))
    [note] = [n for n in report.notes if n.startswith("DICOM window")]
    assert "CT: 400/40 for 2 image(s)" in note
    assert "MR: the file's own W/L (HU windows apply to CT only) for 2 image(s)" in note


def test_ct_without_stored_window_gets_one_window_for_the_dataset(data_dirs, mk):
    """Two CT files of different intensity ranges and no stored window: the same HU must give the
    same grey level in both (a per-image percentile window would not)."""
    images, masks = data_dirs
    for i, offset in enumerate((0, 400)):
        mk.dicom(images / f"ct{i}.dcm", hu_slice(offset), slope=1, intercept=-1024)
        m = np.zeros((32, 32), np.uint8)
        m[:, 8:24] = 1
        mk.png(masks / f"ct{i}.png", m)
    data, report = load_dataset(DataConfig(str(images), str(masks)), 32)
    width, level = (float(v) for v in data.window.split("/"))
    fg = np.concatenate([(hu_slice(o)[:, 8:24].astype(float) - 1024).ravel() for o in (0, 400)])
    lo, hi = np.percentile(fg, (0.5, 99.5))  # the window: these, and 5% of their span beyond each
    assert abs(level - (lo + hi) / 2) <= 2 and abs(width - 1.1 * (hi - lo)) <= 3
    order = np.argsort(data.names)
    a, b = data.images[order[0], 0], data.images[order[1], 0]
    for img, offset in ((a, 0), (b, 400)):  # grey = the one window applied to each file's HU
        hu = hu_slice(offset).astype(np.float32) - 1024
        np.testing.assert_array_equal(img, apply_window(hu, width, level))
    assert any("one window for the dataset" in n for n in report.notes)


def test_user_class_names_name_instance_foreground(nuclei):
    images, masks, _ = nuclei
    report = inspect_dataset(DataConfig(str(images), str(masks), class_names=["nucleus"]))
    assert [c.name for c in report.classes] == ["background", "nucleus"]
    assert report.mask_convention.startswith("instance labels")


@pytest.mark.parametrize("layout", ["one folder", "one folder given as images", "two folders"])
def test_cellpose_names_pair_as_instance_masks(tmp_path, layout):
    """Cellpose's `x.png` + `x_masks.png` (or `x_cp_masks.png`), in its one folder or in two."""
    images = masks = tmp_path / "cells"
    if layout == "two folders":
        images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i, k in enumerate((5, 8, 11, 14)):
        Image.fromarray(rng.integers(0, 255, (64, 64), np.uint8)).save(images / f"c{i}.png")
        Image.fromarray(discs(rng, (64, 64), k, radius=(3, 5))).save(
            masks / f"c{i}{'_masks' if i % 2 else '_cp_masks'}.png")
    cfg = DataConfig(str(images), "" if layout == "one folder given as images" else str(masks))
    report = inspect_dataset(cfg)
    assert (report.n_pairs, report.n_unlabelled, report.problems()) == (4, 0, [])
    assert report.mask_convention.startswith("instance labels")
    data, _ = load_dataset(cfg, 32)
    assert sorted(data.names) == ["c0", "c1", "c2", "c3"] and data.labels == "instances"
