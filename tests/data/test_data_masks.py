"""Mask conventions -> class indices and codes."""

import numpy as np
import pytest
from PIL import Image

from segstudio.config import DataConfig
from segstudio.data import inspect_dataset, load_dataset
from segstudio.data.masks import analyse_mask, build_classes
from segstudio.errors import DataError


def _load(images, masks, mk, mask_arrays, ext="png", size=16):
    for i, m in enumerate(mask_arrays):
        mk.png(images / f"im{i}.png", mk.gradient(*m.shape[:2]))
        Image.fromarray(m).save(masks / f"im{i}.{ext}")
    return load_dataset(DataConfig(str(images), str(masks)), size)


@pytest.mark.parametrize("fg", [255, 1])
def test_binary_masks(data_dirs, mk, fg):
    data, report = _load(*data_dirs, mk, [mk.square(value=fg), mk.square(value=fg)])
    assert data.codes == ["background", "foreground"]
    assert set(np.unique(data.masks)) == {0, 1}
    assert report.mask_convention == f"binary 0/{fg}"
    assert [c.value for c in report.classes] == ["0", str(fg)]
    assert report.classes[1].pixel_share == pytest.approx(0.25)


def test_mixed_binary_conventions_and_empty_masks(data_dirs, mk):
    data, report = _load(*data_dirs, mk, [mk.square(value=1), mk.square(value=255),
                                          np.zeros((16, 16), np.uint8)])
    assert data.codes == ["background", "foreground"] and data.masks.max() == 1
    assert report.mask_convention == "binary 0/1 and 0/255"


def test_label_values_sorted_into_indices(data_dirs, mk):
    a = np.zeros((16, 16), np.uint8)
    a[:4], a[4:8] = 10, 20
    b = np.zeros((16, 16), np.uint8)
    b[:2] = 40
    data, report = _load(*data_dirs, mk, [a, b])
    assert data.codes == ["background", "class 10", "class 20", "class 40"]
    assert report.mask_convention == "label image values 0, 10, 20, 40"
    order = np.argsort(data.names)
    np.testing.assert_array_equal(data.masks[order[0]], np.searchsorted([0, 10, 20, 40], a))
    assert sum(c.pixel_share for c in report.classes) == pytest.approx(1.0)


def test_classes_txt_names_by_value(data_dirs, mk):
    images, masks = data_dirs
    (masks / "classes.txt").write_text("bg\nliver\nkidney\ntumour\n")
    m = np.zeros((16, 16), np.uint8)
    m[:4], m[4:6] = 1, 3  # value 2 never appears: indices still equal values
    data, report = _load(images, masks, mk, [m])
    assert data.codes == ["bg", "liver", "kidney", "tumour"]
    assert set(np.unique(data.masks)) == {0, 1, 3}
    assert report.classes[2].pixel_share == 0 and any("classes.txt" in n for n in report.notes)


def test_codes_txt_names_binary_255(data_dirs, mk):
    images, masks = data_dirs
    (masks / "codes.txt").write_text("Background\nNucleus\n\n")
    data, _ = _load(images, masks, mk, [mk.square()])
    assert data.codes == ["Background", "Nucleus"] and data.masks.max() == 1


def test_rgb_colour_masks(data_dirs, mk):
    m = np.zeros((16, 16, 3), np.uint8)
    m[:4] = (255, 0, 0)
    m[4:6] = (0, 255, 0)
    m2 = np.zeros((16, 16, 3), np.uint8)
    m2[:3] = (0, 0, 255)
    data, report = _load(*data_dirs, mk, [m, m2])
    assert report.mask_convention.startswith("RGB colours")
    assert [c.value for c in report.classes] == ["#000000", "#0000ff", "#00ff00", "#ff0000"]
    assert data.codes[0] == "background" and len(data.codes) == 4
    red = data.codes.index("class #ff0000")
    i = data.names.index("im0")
    assert np.all(data.masks[i, :4] == red) and np.all(data.masks[i, 8:] == 0)


def test_palette_png_masks_by_palette_index(data_dirs, mk):
    """The index is the class value, so classes.txt names follow it (Pascal VOC's convention)."""
    images, masks = data_dirs
    mk.png(images / "p.png", mk.gradient())
    pal = Image.fromarray(np.where(mk.square() > 0, 1, 0).astype(np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
    pal.save(masks / "p.png")
    big = Image.fromarray(np.where(mk.square() > 0, 2, 1).astype(np.uint8), mode="P")
    big.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)  # index 2 green, index 1 red
    mk.png(images / "q.png", mk.gradient())
    big.save(masks / "q.png")
    (masks / "classes.txt").write_text("background\ntumour\nvessel\n")
    data, report = load_dataset(DataConfig(str(images), str(masks)), 16)
    assert [(c.name, c.value) for c in report.classes] == [("background", "0"), ("tumour", "1"),
                                                           ("vessel", "2")]
    q = data.names.index("q")
    assert np.array_equal(data.masks[q], np.where(mk.square() > 0, 2, 1))


def test_jpeg_like_mask_thresholded(data_dirs, mk):
    images, masks = data_dirs
    noisy = mk.square(64, 64).astype(int)
    noisy = noisy + np.random.default_rng(0).integers(-20, 20, noisy.shape)
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    data, report = _load(images, masks, mk, [noisy], size=64)
    assert data.codes == ["background", "foreground"]
    np.testing.assert_array_equal(data.masks[0], mk.square(64, 64) > 0)
    assert any("thresholded at 128" in n for n in report.notes)


def test_mask_with_many_values_is_skipped(data_dirs, mk):
    images, masks = data_dirs
    _load(images, masks, mk, [mk.square()])
    mk.png(images / "bad.png", mk.gradient())
    mk.png(masks / "bad.png", mk.gradient())
    data, report = load_dataset(DataConfig(str(images), str(masks)), 16)
    assert data.names == ["im0"]
    [p] = report.other
    assert p.path == "masks/bad.png" and "distinct values; expected a few class labels" in p.reason


def test_analyse_float_and_16bit_labels():
    f = analyse_mask(np.array([[0.0, 2.0], [2.0, 7.0]], np.float32))
    assert f.keys == [0, 2, 7] and f.counts == [1, 2, 1]
    with pytest.raises(DataError, match="non-integer"):
        analyse_mask(np.array([[0.5, 1.0]]))
    g = analyse_mask(np.array([[0, 1000], [1000, 3]], np.uint16))
    cmap = build_classes([g])
    assert cmap.codes == ["background", "class 3", "class 1000"]
    assert cmap.lut(g)[g.local].tolist() == [[0, 2], [2, 1]]


def test_too_many_classes_over_all_masks(data_dirs, mk):
    images, masks = data_dirs
    for i in range(10):  # 30 values per mask, 300 over the dataset, 0 included (instance labels, say)
        mk.png(images / f"i{i}.png", mk.gradient(6, 5))
        Image.fromarray((np.arange(30).reshape(6, 5) + 30 * i).astype(np.uint16)).save(masks / f"i{i}.png")
    cfg = DataConfig(str(images), str(masks))
    report = inspect_dataset(cfg)
    assert report.n_pairs == 0 and report.other[0].reason.startswith("300 classes found; at most 255 are supported")
    with pytest.raises(DataError, match="300 classes found"):
        load_dataset(cfg, 8)


def test_a_16_bit_mask_of_small_values_is_never_jpeg_thresholded(data_dirs, mk):
    images, masks = data_dirs
    m = np.zeros((64, 64), np.uint16)
    for k in range(40):  # 40 labels of 1..40 (below 48, as a JPEG's dark noise would be)
        m[(k // 8) * 12:(k // 8) * 12 + 3, (k % 8) * 8:(k % 8) * 8 + 3] = k + 1
    mk.png(images / "a.png", mk.gradient(64, 64))
    Image.fromarray(m).save(masks / "a.png")
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert not any("JPEG-like" in n for n in report.notes)


def test_a_colour_mask_among_grey_masks_is_reported(data_dirs, mk):
    images, masks = data_dirs
    for i in range(3):
        mk.png(images / f"g{i}.png", mk.gradient())
        mk.png(masks / f"g{i}.png", mk.square())
    mk.png(images / "c.png", mk.gradient())
    colour = np.zeros((16, 16, 3), np.uint8)
    colour[4:12, 4:12] = (255, 0, 0)
    mk.png(masks / "c.png", colour)
    report = inspect_dataset(DataConfig(str(images), str(masks)))
    assert report.n_pairs == 3 and report.mask_convention.startswith("binary")
    [problem] = report.other
    assert problem.path == "masks/c.png" and "colour mask among grey masks" in problem.reason
