"""Correcting masks without Qt: paint tools, undo/redo over a session, saving corrections beside
the masks in the user's convention (never over them), autosave, and the loaders taking the
corrections in."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segstudio.config import DataConfig
from segstudio.data import load_dataset
from segstudio.data.corrections import MANIFEST, corrections_dir
from segstudio.editing import paint
from segstudio.editing.review_model import ReviewModel
from segstudio.editing.store import MaskContext, item_key, load_mask
from segstudio.inference.review import ReviewItem


def test_a_brush_stroke_has_no_gaps_and_the_eraser_takes_it_back():
    plane = np.zeros((64, 64), np.uint8)
    box = paint.line(plane, (10, 5), (10, 60), 2, 1)
    assert plane[10, 5:61].all() and box == (8, 13, 3, 63)
    paint.line(plane, (10, 5), (10, 60), 3, 0)
    assert not plane.any()


def test_fill_fills_the_inside_of_an_outline_only():
    plane = np.zeros((40, 40), np.uint8)
    plane[10, 10:30] = plane[29, 10:30] = plane[10:30, 10] = plane[10:30, 29] = 2
    paint.fill(plane, 20, 20, 2)
    assert plane[10:30, 10:30].all() and plane.sum() == 2 * 400
    assert paint.fill(plane, 20, 20, 2) is None  # already that class


def test_fill_limited_to_an_intensity_range_stops_where_the_image_changes():
    plane = np.zeros((30, 30), np.uint8)
    image = np.full((30, 30), 20, np.uint8)
    image[8:22, 8:22] = 180  # an organ, not outlined in the labels
    image[14, 14] = 200      # within the tolerance
    box = paint.fill(plane.copy(), 15, 15, 1)  # no tolerance: the whole background, borders too
    assert box == (0, 30, 0, 30)
    box = paint.fill(plane, 15, 15, 1, image, tolerance=30)
    assert box == (8, 22, 8, 22) and plane.sum() == 14 * 14 and not plane[0].any()
    rgb = np.repeat(image[..., None], 3, axis=-1)
    rgb[10, 10, 2] = 20  # one channel far off: not similar
    region = paint.fill_region(np.zeros((30, 30), np.uint8), 15, 15, rgb, 30)
    assert region.sum() == 14 * 14 - 1 and not region[10, 10] and not paint.touches_border(region)
    assert paint.touches_border(paint.fill_region(np.zeros((30, 30), np.uint8), 15, 15))


def test_a_polygon_fills_its_inside():
    plane = np.zeros((50, 50), np.uint8)
    paint.polygon(plane, [(10, 10), (10, 40), (40, 40), (40, 10)], 3)
    assert plane[12:39, 12:39].all() and not plane[:9].any() and not plane[:, 42:].any()


@pytest.fixture
def dataset(tmp_path):
    """Four 0/255 PNG pairs (one palette-free binary convention) and one image without a mask."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(images / f"c{i}.png")
        m = np.zeros((40, 48), np.uint8)
        m[5 + i:20 + i, 8:30] = 255
        Image.fromarray(m).save(masks / f"c{i}.png")
    Image.fromarray(rng.integers(0, 255, (40, 48), dtype=np.uint8)).save(images / "new.png")
    return images, masks


def _item(data, name):
    k = next(i for i, v in enumerate(data.volumes) if v.name == name)
    v = data.volumes[k]
    return ReviewItem(k, v.name, data.images[k, 0], data.masks[k], data.masks[k].copy(), (), float("nan"),
                      v.sources[0], v.frame, mask_file=v.label)


def test_unlabelled_images_are_no_problem_and_listed(dataset):
    images, masks = dataset
    data, report = load_dataset(DataConfig(str(images), str(masks)), 32)
    assert report.n_unlabelled == 1 and not report.problems() and "Unlabelled:    1" in report.format()
    assert data.unlabelled == [str(images / "new.png")] and data.class_keys == [0, 255]


def test_a_correction_is_saved_beside_the_masks_and_used_on_the_next_load(dataset):
    images, masks = dataset
    original = (masks / "c0.png").read_bytes()
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 32)
    model = ReviewModel()
    model.set_items([_item(data, "c0")], MaskContext.of(data, run_dir="/runs/r1"))
    model.select(0)
    model.add_mask(load_mask(model.item, model.ctx, None))
    assert model.mask.labels.shape == (1, 40, 48) and model.mask.labels.max() == 1  # original size, classes
    model.set_tool("brush", radius=3, label=1)
    model.press(35, 5)
    model.drag(35, 40)
    model.release()
    assert model.unsaved() and model.history.can_undo
    written, problems = model.save()
    assert not problems and written == [corrections_dir(masks) / "c0.png"]
    saved = np.asarray(Image.open(written[0]))
    assert set(np.unique(saved)) == {0, 255} and saved[35, 20] == 255  # the user's 0/255 convention
    assert (masks / "c0.png").read_bytes() == original  # the user's mask is untouched
    record = json.loads((corrections_dir(masks) / MANIFEST).read_text())["files"]["c0.png"]
    assert record["run"] == "/runs/r1" and record["started_from"] == "ground truth" and record["strokes"] == 1
    assert not model.unsaved() and not list((corrections_dir(masks) / ".autosave").glob("*"))

    data2, report2 = load_dataset(DataConfig(str(images), str(masks)), 48)
    k = next(i for i, v in enumerate(data2.volumes) if v.name == "c0")
    assert data2.volumes[k].label == str(written[0]) and report2.n_corrected == 1
    assert data2.masks[k].sum() > data.masks[k].sum()  # the stroke is in the training mask
    assert "1 corrected mask(s)" in report2.format()


def test_undo_and_redo_cross_items_and_restore_exactly(dataset):
    images, masks = dataset
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 32)
    model = ReviewModel()
    model.set_items([_item(data, "c0"), _item(data, "c1")], MaskContext.of(data))
    before = {}
    for index in (0, 1):
        model.select(index)
        model.add_mask(load_mask(model.item, model.ctx, None))
        before[index] = model.mask.labels.copy()
        model.set_tool("fill" if index else "brush", label=1)
        model.press(2, 2)
        if index:  # a fill of most of the image is said first, done on a second click
            model.press(2, 2)
        model.drag(30, 40)
        model.release()
    after = {i: model.masks[item_key(model.items[i])].labels.copy() for i in (0, 1)}
    assert all(not np.array_equal(before[i], after[i]) for i in (0, 1))
    model.undo()
    model.undo()
    assert model.current == 0  # the second undo went back to the first item
    assert all(np.array_equal(model.masks[item_key(model.items[i])].labels, before[i]) for i in (0, 1))
    model.redo()
    model.redo()
    assert all(np.array_equal(model.masks[item_key(model.items[i])].labels, after[i]) for i in (0, 1))
    assert model.current == 1 and not model.history.can_redo


def test_a_fill_of_most_of_the_image_is_said_first_and_a_tolerance_limits_it(dataset):
    images, masks = dataset
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 32)
    model = ReviewModel()
    warnings = []
    model.listen(lambda what, detail: warnings.append(detail) if what == "warning" else None)
    model.set_items([_item(data, "c0")], MaskContext.of(data))
    model.select(0)
    model.add_mask(load_mask(model.item, model.ctx, None))
    mask = model.mask
    mask.image = np.full(mask.labels.shape, 30, np.uint8)
    mask.image[0, :, 24:] = 200  # the right half is bright
    before = mask.labels.copy()
    model.set_tool("fill", label=1)
    assert model.press(35, 5) is None and np.array_equal(mask.labels, before)  # not yet
    assert "would cover" in warnings[-1] and "% of the image, up to the image's edges" in warnings[-1]
    assert not model.history.can_undo
    box = model.press(30, 40)  # a second click in that region fills it
    assert box == (0, 40, 0, 48) and (mask.labels[0] == 1).all() and model.history.can_undo
    model.undo()
    model.set_tool(tolerance=40)  # the dark half only: less than the share that asks first
    mask.image[0, :, :14] = 200   # ... once the left columns are bright too
    n = len(warnings)
    box = model.press(35, 20)
    assert len(warnings) == n and box is not None
    filled = (mask.labels[0] == 1) & (before[0] == 0)
    assert filled[:, 14:24].any() and not filled[:, 24:].any() and not filled[:, :14].any()


def test_accept_prediction_and_reset_to_truth_are_undoable(dataset):
    images, masks = dataset
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 32)
    model = ReviewModel()
    model.set_items([_item(data, "c2")], MaskContext.of(data))
    model.select(0)
    mask = load_mask(model.item, model.ctx, None)
    mask.pred = np.zeros_like(mask.labels)
    model.add_mask(mask)
    truth = mask.labels.copy()
    model.accept_prediction()
    assert not mask.labels.any()
    model.reset_to_truth()
    assert np.array_equal(mask.labels, truth)
    model.undo()
    assert not mask.labels.any()


def test_an_unlabelled_image_gets_labelled_and_unsaved_strokes_survive_a_crash(dataset):
    images, masks = dataset
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 32)
    item = ReviewItem(-1, "new", data.images[0, 0], None, data.masks[0], (), float("nan"), data.unlabelled[0], 0)
    model = ReviewModel()
    model.set_items([item], MaskContext.of(data))
    model.select(0)
    model.add_mask(load_mask(item, model.ctx, None))
    assert model.mask.started_from == "empty" and model.mask.truth is None
    model.set_tool("polygon", label=1)
    model.press(5, 5)
    for y, x in ((5, 30), (30, 30), (30, 5)):
        model.drag(y, x)
    model.release()
    stroke = model.mask.labels.copy()
    assert stroke[0, 10:25, 10:25].all()

    crashed = ReviewModel()  # a new session: the stroke comes back from the autosave
    crashed.set_items([item], MaskContext.of(data))
    crashed.select(0)
    crashed.add_mask(load_mask(item, crashed.ctx, None))
    assert crashed.mask.recovered and np.array_equal(crashed.mask.labels, stroke) and crashed.unsaved()
    written, _ = crashed.save()
    assert written == [corrections_dir(masks) / "new.png"]
    data2, report2 = load_dataset(DataConfig(str(images), str(masks)), 32)
    assert report2.n_unlabelled == 0 and report2.n_pairs == 5 and not data2.unlabelled


def test_colour_and_palette_masks_are_written_in_their_own_convention(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9)
    for i in range(3):
        Image.fromarray(np.full((20, 20), 60 * i, np.uint8)).save(images / f"p{i}.png")
        m = np.zeros((20, 20), np.uint8)
        m[2:8, 2:8], m[10:16, 10:16] = 1, 2
        p = Image.fromarray(m)
        p.putpalette(palette)
        p.save(masks / f"p{i}.png")
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 16)
    model = ReviewModel()
    model.set_items([_item(data, "p0")], MaskContext.of(data))
    model.select(0)
    model.add_mask(load_mask(model.item, model.ctx, None))
    model.set_tool("brush", radius=1, label=2)
    model.press(18, 2)
    model.release()
    written, _ = model.save()
    saved = Image.open(written[0])
    assert saved.mode == "P" and saved.getpalette()[:9] == palette[:9]
    values = np.asarray(saved)
    assert values[18, 2] == 2 and values[4, 4] == 1 and set(np.unique(values)) == {0, 1, 2}


def test_a_scan_correction_keeps_the_label_files_geometry(tmp_path):
    import nibabel as nib

    from segstudio.data.sample_volumes import sample_volumes

    root = sample_volumes(tmp_path / "vol")[0].parent
    data, _ = load_dataset(DataConfig(str(root)), 32)
    k = data.valid_volumes()[0]
    v = data.volumes[k]
    rows = np.arange(v.first, v.first + v.n_slices)
    item = ReviewItem(k, v.name, np.asarray(data.images[rows, 0]), np.asarray(data.masks[rows]),
                      np.asarray(data.masks[rows]), (), float("nan"), v.sources[0], mask_file=v.label)
    model = ReviewModel()
    model.set_items([item], MaskContext.of(data))
    model.select(0)
    model.add_mask(load_mask(item, model.ctx, None))
    mask = model.mask
    assert mask.labels.shape[0] == v.shape[0] and mask.labels.shape[1:] == v.shape[1:]
    model.set_slice(3)
    model.set_tool("brush", radius=2, label=2)
    model.press(1, 1)
    model.release()
    written, problems = model.save()
    assert not problems and written[0].parent == corrections_dir(root / "labelsTr")
    original, corrected = nib.load(v.label), nib.load(written[0])
    assert np.allclose(original.affine, corrected.affine) and original.shape == corrected.shape
    diff = np.asarray(corrected.dataobj) != np.asarray(original.dataobj)
    assert 0 < diff.sum() <= 25
    data2, report2 = load_dataset(DataConfig(str(root)), 32)
    assert data2.volumes[[w.name for w in data2.volumes].index(v.name)].label == str(written[0])
    assert "1 corrected label volume(s)" in report2.format()
    shutil.rmtree(root)


def _edit(model, item, ctx, y=2, x=2, label=1):
    model.set_items([item], ctx)
    model.select(0)
    model.add_mask(load_mask(item, ctx, None))
    model.set_tool("brush", radius=1, label=label)
    model.press(y, x)
    model.release()
    return model.mask


def test_a_masks_folder_named_like_a_corrections_folder_is_never_written(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "expert-corrections"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 20), 50 * i, np.uint8)).save(images / f"a{i}.png")
        m = np.zeros((20, 20), np.uint8)
        m[5:15, 5:15] = 255
        Image.fromarray(m).save(masks / f"a{i}.png")
    original = (masks / "a0.png").read_bytes()
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 16)
    model = ReviewModel()
    _edit(model, _item(data, "a0"), MaskContext.of(data))
    written, problems = model.save()
    assert not problems and written[0].parent.name == "expert-corrections-corrections"
    assert (masks / "a0.png").read_bytes() == original


def test_an_edit_made_while_saving_stays_unsaved_and_a_saved_correction_reopens(dataset):
    images, masks = dataset
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 32)
    model, item = ReviewModel(), _item(data, "c1")
    mask = _edit(model, item, MaskContext.of(data))
    jobs = model.prepare_save()  # Save pressed ...
    model.press(30, 30)  # ... and a stroke lands while the worker writes
    model.release()
    written, _ = model.finish_save(model.write(jobs))
    assert written and mask.unsaved  # the second stroke is neither lost nor marked saved
    model.save()
    reopened = ReviewModel()  # the item's original mask_file still names the user's mask
    reopened.set_items([item], MaskContext.of(data))
    reopened.select(0)
    again = load_mask(item, reopened.ctx, None)
    assert np.array_equal(again.labels, mask.labels)  # the correction, not the original


def test_an_unlabelled_image_named_like_a_mask_pairs_only_with_itself(dataset):
    from segstudio.data.corrections import correction_name

    assert correction_name("", "/x/liver_gt.png") == "liver_gt_mask.png"
    assert correction_name("", "/x/liver.png") == "liver.png"


def test_undo_of_an_image_no_longer_listed_is_skipped(dataset):
    images, masks = dataset
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 32)
    model, messages = ReviewModel(), []
    model.listen(lambda what, detail: messages.append(detail) if what == "warning" else None)
    mask = _edit(model, _item(data, "c2"), MaskContext.of(data))
    edited = mask.labels.copy()
    model.set_items([_item(data, "c3")], MaskContext.of(data))  # another list; c2 keeps its edit
    model.select(0)
    assert model.undo() is None and np.array_equal(mask.labels, edited) and messages


def test_kits_cases_sharing_a_label_name_get_their_own_correction(tmp_path):
    import nibabel as nib

    root = tmp_path / "kits"
    rng = np.random.default_rng(0)
    for k in range(3):
        case = root / f"case_0000{k}"
        case.mkdir(parents=True)
        nib.save(nib.Nifti1Image(rng.normal(0, 1, (16, 16, 6)).astype(np.float32), np.eye(4)), case / "imaging.nii.gz")
        label = np.zeros((16, 16, 6), np.uint8)
        label[4:10, 4:10, 1:5] = 1
        nib.save(nib.Nifti1Image(label, np.eye(4)), case / "segmentation.nii.gz")
    data, report = load_dataset(DataConfig(str(root)), 16)
    assert report.layout == "kits" and len(data.volumes) == 3
    v = data.volumes[0]
    rows = np.arange(v.first, v.first + v.n_slices)
    item = ReviewItem(0, v.name, np.asarray(data.images[rows, 0]), np.asarray(data.masks[rows]),
                      np.asarray(data.masks[rows]), (), float("nan"), v.sources[0], mask_file=v.label)
    model = ReviewModel()
    _edit(model, item, MaskContext.of(data), y=0, x=0)
    written, problems = model.save()
    assert not problems and written[0] == corrections_dir(root) / f"{v.name}.nii.gz"
    data2, _ = load_dataset(DataConfig(str(root)), 16)
    labels = {w.name: w.label for w in data2.volumes}
    assert labels[v.name] == str(written[0])
    assert all(Path(labels[n]).name == "segmentation.nii.gz" for n in labels if n != v.name)


def test_each_correction_keeps_its_own_files_values_and_depth(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    m = np.zeros((20, 24), np.uint8)
    m[4:12, 4:12] = 1
    for name, values in (("a", m * 255), ("b", m), ("c", m.astype(np.uint16))):  # 0/255, 0/1, 16-bit
        Image.fromarray(np.full((20, 24), 90, np.uint8)).save(images / f"{name}.png")
        Image.fromarray(values).save(masks / f"{name}.png")
    data, _ = load_dataset(DataConfig(str(images), str(masks)), 16)
    for name, top, mode in (("a", 255, "L"), ("b", 1, "L"), ("c", 1, "I;16")):
        model = ReviewModel()
        _edit(model, _item(data, name), MaskContext.of(data), y=16, x=20)
        written, _ = model.save()
        saved = Image.open(written[0])
        assert saved.mode == mode and np.asarray(saved)[16, 20] == top and set(np.unique(np.asarray(saved))) == {0, top}
