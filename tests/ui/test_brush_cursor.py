"""The brush cursor (ui/panels/brush_cursor.py): the circle that follows the mouse while painting,
in the review's image view and in each plane of the scan viewer."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from segstudio.editing.labels import EditableMask
from segstudio.editing.store import MaskContext
from segstudio.inference.review import ReviewItem
from segstudio.ui.panels.brush_cursor import BrushCursor
from segstudio.ui.panels.review_viewer import ReviewViewer
from tests.ui.test_scan_viewer import make_data, screen_pos


def move(port, p) -> None:
    QApplication.sendEvent(port, QMouseEvent(QEvent.Type.MouseMove, QPointF(p), port.mapToGlobal(QPointF(p)),
                                             Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
                                             Qt.KeyboardModifier.NoModifier))


@pytest.fixture
def review_viewer(qtbot, tmp_path):
    image = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (30, 1))
    labels = np.zeros((30, 40), np.uint8)
    labels[8:20, 10:25] = 1
    item = ReviewItem(0, "case", image, labels, labels.copy(), (), float("nan"), "case.png")
    v = ReviewViewer()
    qtbot.addWidget(v)
    v.model.set_items([item], MaskContext(["background", "liver"], [0, 1], False, str(tmp_path / "masks")))
    v.model.select(0)
    v.model.add_mask(EditableMask("case.png#0", "case", image[None], labels[None].copy(), labels[None].copy(),
                                  labels[None].copy(), source="case.png"))
    v.resize(500, 420)
    v.show()
    v.show_item(item)
    v.set_editing(True)
    qtbot.waitExposed(v)
    v.fit()
    return v


def test_the_review_shows_the_brush_around_the_pixels_it_paints(review_viewer):
    v = review_viewer
    cursor = v.brush_cursor
    assert isinstance(cursor, BrushCursor) and not cursor.isVisible()
    v.model.set_tool("brush", radius=3, label=1)
    port = v.view_review.viewport()
    move(port, v.viewbox.mapViewToDevice(QPointF(20.5, 12.5)))
    assert cursor.isVisible()
    rect = cursor.rect()
    assert (rect.center().x(), rect.center().y()) == pytest.approx((20.5, 12.5), abs=0.05)
    assert (rect.width(), rect.height()) == pytest.approx((7.0, 7.0))  # pixels within 3 of the centre, to their edges
    v.model.set_tool("fill")
    move(port, v.viewbox.mapViewToDevice(QPointF(21.5, 12.5)))
    assert not cursor.isVisible()


def test_each_scan_plane_shows_the_brush_to_the_planes_scale(qtbot):
    from segstudio.ui.panels.scan_viewer import ScanViewer

    v = ScanViewer()
    qtbot.addWidget(v)
    v.resize(900, 420)
    v.set_data(make_data())
    v.show()
    qtbot.waitExposed(v)
    v.set_editing(True)
    v.tools.set_tool("brush", radius=2, label=1)
    axial, coronal, _ = v.planes
    move(coronal.graphics.viewport(), screen_pos(coronal, 4.5, 6.5))
    assert isinstance(coronal.brush, BrushCursor) and coronal.brush.isVisible()
    rect = coronal.brush.rect()  # millimetres: 0.8 mm columns, 3 mm rows (slices)
    assert (rect.width(), rect.height()) == pytest.approx((5 * 0.8, 5 * 3.0))
    assert (rect.center().x(), rect.center().y()) == pytest.approx((6.5 * 0.8, 4.5 * 3.0), abs=0.1)
    assert not axial.brush.isVisible()
    v.set_editing(False)
    move(coronal.graphics.viewport(), screen_pos(coronal, 4.5, 7.5))
    assert not coronal.brush.isVisible()
