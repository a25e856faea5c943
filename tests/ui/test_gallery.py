"""The Data area's gallery: virtualised (thumbnails made for the rows drawn), named, in each
image's own aspect."""

from __future__ import annotations

import time

import numpy as np
from PySide6.QtCore import Qt

from segstudio.data.items import SegDataset, VolumeRef
from segstudio.ui.panels.gallery import Thumbnails, thumbnail_size


def many_images(n: int, shapes: dict[int, tuple[int, int]] = {}) -> SegDataset:
    """`n` tiny 2-D pairs, cached at 8 px as a loaded dataset holds them; `shapes`: (H, W) as read."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 1, 8, 8), dtype=np.uint8)
    masks = np.zeros((n, 8, 8), np.uint8)
    masks[:, 2:6, 2:6] = 1
    volumes = [VolumeRef(f"image {k:05d}", (f"/data/image {k:05d}.png",), "", str(k), k, 1,
                         (1, *shapes.get(k, (8, 8)))) for k in range(n)]
    return SegDataset(images, masks, volumes, ["background", "cell"], np.arange(n - n // 5),
                      np.arange(n - n // 5, n), "auto", 8)


def test_ten_thousand_images_make_only_the_thumbnails_on_screen(qtbot):
    gallery = Thumbnails()
    qtbot.addWidget(gallery)
    gallery.resize(700, 500)
    gallery.show()
    data = many_images(10_000)
    start = time.perf_counter()
    gallery.show_dataset(data)
    qtbot.wait(50)  # drawn
    assert time.perf_counter() - start < 3
    model = gallery.model
    assert gallery.count() == 10_000 and "(10000)" in gallery.title()
    assert 0 < model.made < 200  # the rows on screen, not 10,000
    gallery.list_thumbnails.scrollToBottom()
    qtbot.wait(50)
    assert model.made < 400
    last = model.index(9_999)
    assert model.data(last, Qt.ItemDataRole.DisplayRole) == "image 09999"  # names shown under each
    assert "validation" in model.data(last, Qt.ItemDataRole.ToolTipRole)
    gallery.clear()
    assert gallery.count() == 0


def test_non_square_images_keep_their_aspect(qtbot):
    gallery = Thumbnails()
    qtbot.addWidget(gallery)
    gallery.show_dataset(many_images(3, {0: (256, 1024), 1: (800, 600)}))  # NM 1024x256, US 600x800
    nm, us, square = (gallery.model.thumbnail(k) for k in range(3))
    assert (nm.width(), nm.height()) == (96, 24)
    assert (us.width(), us.height()) == (72, 96)
    assert (square.width(), square.height()) == (96, 96)
    assert thumbnail_size((100, 100), spacing=(2.5, 1.0)) == (38, 96)  # thick slices: mm, not voxels
