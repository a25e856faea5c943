"""The Data area's gallery: every image (or scan) of the loaded dataset with its mask blended in,
named, in its own aspect. A virtualised list: a thumbnail is made when its row is first drawn
and kept in a bounded cache, so 10,000 images cost what the visible ones cost."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QPainter, QPalette, QPixmap
from PySide6.QtWidgets import (QGroupBox, QListView, QStyle, QStyledItemDelegate, QStyleOptionViewItem,
                               QVBoxLayout)

from segstudio.ui import overlay

THUMB = 96        # the longer side of a thumbnail, in pixels
CACHE = 600       # thumbnails kept (a few screens' worth)
OPACITY = 0.45    # of the mask over the image
Index = QModelIndex | QPersistentModelIndex


def thumbnail_size(shape: tuple[int, int], spacing: tuple[float, float] = (1.0, 1.0),
                   longest: int = THUMB) -> tuple[int, int]:
    """(width, height) of a thumbnail of an (H, W) image with (dy, dx) pixel spacing: the longer
    side `longest`, the image's own aspect (the cache holds every image square)."""
    h, w = shape[0] * spacing[0], shape[1] * spacing[1]
    if h <= 0 or w <= 0:
        return longest, longest
    if w >= h:
        return longest, max(4, round(longest * h / w))
    return max(4, round(longest * w / h)), longest


class ThumbnailModel(QAbstractListModel):
    """One row per volume of a SegDataset (a 2-D image is a one-slice volume): its name, a
    tooltip and a thumbnail, made on demand. `made` counts the thumbnails made."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dataset = None
        self._valid: set[int] = set()
        self._cache: OrderedDict[int, QPixmap] = OrderedDict()
        self.made = 0

    def set_dataset(self, dataset) -> None:
        self.beginResetModel()
        self.dataset = dataset
        self._cache.clear()
        self._valid = (set() if dataset is None else
                       {int(k) for k in np.unique(dataset.item_volume[np.asarray(dataset.valid_idx, np.int64)])})
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if self.dataset is None or parent.isValid() else len(self.dataset.volumes)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.dataset is None:
            return None
        k = index.row()
        v = self.dataset.volumes[k]
        if role == Qt.ItemDataRole.DisplayRole:
            return v.name
        if role == Qt.ItemDataRole.DecorationRole:
            return self.thumbnail(k)
        if role == Qt.ItemDataRole.ToolTipRole:
            h, w = v.slice_shape(self.dataset.axis)
            shape = f"{v.shape[2]}x{v.shape[1]}x{v.shape[0]} voxels" if self.dataset.volumetric else f"{w}x{h} pixels"
            return f"{v.name}\n{shape}\n{'validation' if k in self._valid else 'training'}"
        if role == Qt.ItemDataRole.UserRole:
            return v.first
        return None

    def thumbnail(self, k: int) -> QPixmap:
        """Volume `k`'s thumbnail (a scan: its slice with the most foreground), cached."""
        pix = self._cache.get(k)
        if pix is not None:
            self._cache.move_to_end(k)
            return pix
        data, v = self.dataset, self.dataset.volumes[k]
        i = v.first
        if v.n_slices > 1:
            masks = data.masks[v.first:v.first + v.n_slices]
            i += int(np.argmax((masks > 0).reshape(len(masks), -1).sum(axis=1)))
        spacing = tuple(s for axis, s in enumerate(v.spacing) if axis != data.axis)
        width, height = thumbnail_size(v.slice_shape(data.axis), spacing)
        rgb = overlay.blend(data.images[i], overlay.colorize(data.masks[i]), OPACITY)
        pix = QPixmap.fromImage(overlay.to_qimage(rgb)).scaled(
            width, height, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.made += 1
        self._cache[k] = pix
        if len(self._cache) > CACHE:
            self._cache.popitem(last=False)
        return pix


class ThumbnailDelegate(QStyledItemDelegate):
    """A thumbnail centred in a THUMB x THUMB square (whatever its aspect), its name below."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(THUMB + 20, THUMB + 10 + option.fontMetrics.height())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, opt, painter, opt.widget)
        rect = option.rect
        pix = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pix, QPixmap):
            x = rect.x() + (rect.width() - pix.width()) // 2
            y = rect.y() + 4 + (THUMB - pix.height()) // 2
            painter.drawPixmap(x, y, pix)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        painter.setPen(opt.palette.color(QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text))
        text_rect = rect.adjusted(2, THUMB + 6, -2, 0)
        name = opt.fontMetrics.elidedText(str(index.data() or ""), Qt.TextElideMode.ElideMiddle, text_rect.width())
        painter.drawText(text_rect, int(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop), name)


class Thumbnails(QGroupBox):
    """The gallery: names under thumbnails in a grid; validation items say so in their tooltip."""

    def __init__(self, parent=None):
        super().__init__("Images with their masks", parent)
        self.model = ThumbnailModel(self)
        view = self.list_thumbnails = QListView(objectName="list_thumbnails")
        view.setViewMode(QListView.ViewMode.IconMode)
        view.setItemDelegate(ThumbnailDelegate(view))
        view.setResizeMode(QListView.ResizeMode.Adjust)
        view.setMovement(QListView.Movement.Static)
        view.setUniformItemSizes(True)  # no size asked of each row: nothing made for rows off screen
        view.setLayoutMode(QListView.LayoutMode.Batched)
        view.setBatchSize(500)
        view.setSpacing(4)
        view.setModel(self.model)
        QVBoxLayout(self).addWidget(view)

    def show_dataset(self, dataset) -> None:
        """One thumbnail per image; a scan shows its slice with the most foreground."""
        n = len(dataset.volumes)
        what = "Scans" if dataset.volumetric else "Images"
        self.setTitle(f"{what} with their masks ({n})" + (" — the slice with the most foreground"
                                                          if dataset.volumetric else ""))
        self.model.set_dataset(dataset)

    def count(self) -> int:
        return self.model.rowCount()

    def clear(self) -> None:
        self.setTitle("Images with their masks")
        self.model.set_dataset(None)
