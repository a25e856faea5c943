"""pyqtgraph plots: live training curves, the per-group LR chart, the LR finder, preview tiles."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QRectF, QTimer, Qt, Slot
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QVBoxLayout, QWidget

from segstudio.ui import overlay

pg.setConfigOptions(background="w", foreground="#2d3748", antialias=True,
                    imageAxisOrder="row-major")

GROUP_COLORS = ["#90cdf4", "#3182ce", "#1a365d", "#805ad5", "#d53f8c"]
REDRAW_MS = 100  # at most ~10 redraws a second
# The robust loss range leaves out the first batches (the first spike): SKIP_START of them (as
# fastai's plot_loss does) or the first EARLY_SHARE, once there are twice as many; and the batch
# losses above TOP_PERCENTILE of the rest.
SKIP_START, EARLY_SHARE, TOP_PERCENTILE = 5, 0.1, 99.0


class Log10Axis(pg.AxisItem):
    """An axis over log10(value) with ticks at decades (and at multiples when few decades are
    in view), labelled with the value itself (1e-4, 2e-3...)."""

    def tickValues(self, minVal, maxVal, size):
        return log_ticks(minVal, maxVal)

    def tickStrings(self, values, scale, spacing):
        return log_tick_labels(values)


def log_ticks(lo: float, hi: float) -> list[tuple[float, list[float]]]:
    """Tick levels for a log10 axis from `lo` to `hi`: decades (every few when many are in
    view), then 2x and 5x, with 3x too when a decade or so is in view."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return []
    span = hi - lo
    step = max(1, math.ceil(span / 6))
    decades = [float(e) for e in range(math.ceil(lo), math.floor(hi) + 1) if e % step == 0]
    multiples = () if span > 3 else (2, 5) if span > 1.2 else (2, 3, 5)
    minor = [e + math.log10(m) for e in range(math.floor(lo), math.ceil(hi)) for m in multiples]
    return [(float(step), decades), (0.1, [v for v in minor if lo <= v <= hi])]


def log_tick_labels(values) -> list[str]:
    """Labels for ticks at log10 positions, with as few digits as keep them distinct."""
    for digits in range(4):
        labels = [f"{10 ** v:.{digits}e}".replace("e-0", "e-") for v in values]
        if len(set(labels)) == len(labels):
            break
    return labels


def plot_title(text: str) -> str:
    return f"<span style='font-size:10pt;font-weight:600;color:#2c5282'>{text}</span>"


def styled_plot(name: str, title: str, left: str = "", bottom: str = "",
                log_y: bool = False, log_x: bool = False) -> pg.PlotWidget:
    axes = {}
    if log_y:
        axes["left"] = Log10Axis("left")
    if log_x:
        axes["bottom"] = Log10Axis("bottom")
    w = pg.PlotWidget(axisItems=axes or None)
    w.setObjectName(name)
    item = w.getPlotItem()
    item.setTitle(plot_title(title))
    item.showGrid(x=True, y=True, alpha=0.15)
    font = QFont()
    font.setPointSize(8)
    for axis in ("left", "bottom"):
        item.getAxis(axis).setTickFont(font)
        item.getAxis(axis).setPen(pg.mkPen("#a0aec0"))
        item.getAxis(axis).setTextPen(pg.mkPen("#4a5568"))
    if left:
        item.setLabel("left", left, **{"font-size": "8pt"})
    if bottom:
        item.setLabel("bottom", bottom, **{"font-size": "8pt"})
    w.setMinimumSize(220, 160)
    w.setMenuEnabled(False)
    return w


def short_group(name: str) -> str:
    """"encoder: stem, layer1, layer2" -> "enc stem–layer2" for legends and bar labels."""
    if ":" not in name:
        return name
    head, tail = name.split(":", 1)
    parts = [p.strip() for p in tail.split(",") if p.strip()]
    span = parts[0] if len(parts) == 1 else f"{parts[0]}–{parts[-1]}"
    return f"{head.strip()[:3]} {span}"


class LRGroupChart(QWidget):
    """Bars of the peak LR each parameter group gets (log scale), redrawn as the range moves."""

    Y0 = -7.0  # bars start at 1e-7

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = styled_plot("plot_lr_groups", "LR per parameter group")
        self.plot.setMouseEnabled(False, False)
        self.plot.hideButtons()
        self.plot.setMinimumSize(200, 150)
        item = self.plot.getPlotItem()
        item.setYRange(self.Y0, -0.5, padding=0)
        item.getAxis("left").setTicks([[(e, f"1e{e}") for e in range(-7, 0)]])
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.6, y0=self.Y0)
        item.addItem(self.bars)
        self.labels: list[pg.TextItem] = []
        self.names: list[str] = []
        self.values: list[float] = []
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.plot)

    def set_plan(self, names: list[str], lrs: list[float]) -> None:
        self.names, self.values = list(names), [float(x) for x in lrs]
        x = np.arange(len(lrs))
        tops = np.log10(np.maximum(self.values, 1e-12))
        brushes = [pg.mkBrush(GROUP_COLORS[i % len(GROUP_COLORS)]) for i in range(len(lrs))]
        self.bars.setOpts(x=x, height=tops - self.Y0, y0=self.Y0, width=0.6, brushes=brushes,
                          pens=[pg.mkPen("#2a4365")] * len(lrs))
        axis = self.plot.getPlotItem().getAxis("bottom")
        axis.setTicks([[(i, short_group(n)) for i, n in enumerate(names)]])
        item = self.plot.getPlotItem()
        for t in self.labels:
            item.removeItem(t)
        self.labels = []
        for i, (lr, top) in enumerate(zip(self.values, tops)):
            t = pg.TextItem(f"{lr:.1e}", color="#1a202c", anchor=(0.5, 1.0))
            t.setPos(i, min(top, -0.7))
            item.addItem(t)
            self.labels.append(t)
        item.setXRange(-0.6, len(lrs) - 0.4, padding=0)


class LRFinderPlot(QWidget):
    """Loss against LR (log x) from the LR finder, with the suggested range shaded."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = styled_plot("plot_lr_find", "Loss vs learning rate", "", "", log_x=True)
        self.plot.setMinimumSize(200, 150)
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#2b6cb0", width=2))
        self.region = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(56, 161, 105, 50),
                                          pen=pg.mkPen("#2f855a"))
        self.region.setVisible(False)
        self.plot.addItem(self.region)
        v = QVBoxLayout(self)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.plot)

    def show_result(self, lrs, losses, lo: float, hi: float) -> None:
        lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
        ok = np.isfinite(lrs) & np.isfinite(losses) & (lrs > 0)
        lrs, losses = lrs[ok], losses[ok]
        if losses.size:  # clip the final explosion so the useful part stays readable
            cap = np.nanpercentile(losses, 90) * 1.5 if losses.size > 5 else losses.max()
            losses = np.minimum(losses, max(cap, losses.min()))
        self.lrs, self.losses = lrs, losses
        self.curve.setData(np.log10(lrs), losses)
        if lo > 0 and hi > 0:
            self.region.setRegion((math.log10(lo), math.log10(hi)))
            self.region.setVisible(True)
        self.plot.getPlotItem().enableAutoRange()


def legend_below(plot: pg.PlotWidget) -> pg.LegendItem:
    """A legend in a row under the plot's x axis, where it never covers a curve; curves plotted
    with a name join it (`fit_legend` gives it as many columns as fit)."""
    item = plot.getPlotItem()
    item.legend = pg.LegendItem(labelTextSize="8pt", horSpacing=8, verSpacing=-4)
    item.layout.addItem(item.legend, 4, 1)
    return item.legend


def fit_legend(plot: pg.PlotWidget) -> None:
    """As many legend columns as fit the plot's width: a wider legend would widen the plot
    beyond its widget (its layout's minimum), cutting off its right side."""
    item = plot.getPlotItem()
    legend = item.legend
    widths = [sample.width() + label.minimumWidth() + 2 * legend.layout.horizontalSpacing()
              for sample, label in legend.items]
    room = plot.width() - item.getAxis("left").width() - 16
    fits = [n for n in range(1, len(widths) + 1)  # entries fill the rows left to right
            if sum(max(widths[c::n]) for c in range(n)) <= room]
    legend.setColumnCount(max(fits, default=1))
    item.setGeometry(QRectF(plot.rect()))  # the plot back to its widget's size


def loss_range(batch_losses, points, show_all: bool = False) -> tuple[float, float]:
    """(low, high) for the loss axis: every validation or epoch loss (`points`) and the batch
    losses after the first few, up to their TOP_PERCENTILE (so the first spike and rare outliers
    do not flatten the rest); `show_all`: every point. Never narrower than a tenth of its top,
    so a flat loss does not get a 16-digit axis."""
    batch = np.asarray(batch_losses, float)
    batch = batch[np.isfinite(batch)]
    points = np.asarray(points, float)
    points = points[np.isfinite(points)]
    if batch.size >= 2 * SKIP_START and not show_all:
        batch = batch[max(SKIP_START, int(batch.size * EARLY_SHARE)):]
        batch = batch[batch <= np.percentile(batch, TOP_PERCENTILE)]
    values = np.concatenate([batch, points])
    if not values.size:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    span = max(hi - lo, 0.1 * max(abs(hi), abs(lo)), 1e-3)
    mid = (lo + hi) / 2
    lo, hi = min(lo, mid - span / 2), max(hi, mid + span / 2)
    step = 10 ** math.floor(math.log10(hi - lo)) / 4  # ends on a grid: the axis moves in steps, not every redraw
    lo, hi = math.floor(lo / step - 0.2) * step, math.ceil(hi / step + 0.2) * step
    return (max(lo, 0.0) if values.min() >= 0 else lo), hi


def log_range(values) -> tuple[float, float]:
    """(low, high) log10 range of positive `values`, at least a decade wide."""
    v = np.asarray(values, float)
    v = np.log10(v[np.isfinite(v) & (v > 0)])
    if not v.size:
        return -4.0, -2.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1:
        mid = round((lo + hi) / 2, 1)  # in steps of a tenth of a decade
        return mid - 0.55, mid + 0.55
    return math.floor(lo * 10 - 0.5) / 10, math.ceil(hi * 10 + 0.5) / 10


class LivePlots(QWidget):
    """Training loss (raw + smoothed) and validation loss, Dice per epoch, LR per group.

    Data is appended at any rate; a timer redraws at most every REDRAW_MS when something changed.
    The axes span the whole run from its start (iterations, epochs); the loss axis leaves out the
    first spike unless "Show all" is ticked. A plot the user pans or zooms keeps that view until
    its "A" button (bottom left) is clicked.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("live_plots")
        self.plot_loss = styled_plot("plot_loss", "Loss", "", "iteration")
        self.plot_dice = styled_plot("plot_dice", "Validation Dice", "", "epoch")
        # LR is plotted as log10 on a linear axis whose labels read 1e-4 etc. (cleaner than log mode)
        self.plot_lr = styled_plot("plot_lr", "Learning rate per group", "", "iteration", log_y=True)
        for p in (self.plot_loss, self.plot_dice, self.plot_lr):
            legend_below(p)
            p.installEventFilter(self)  # resized: the legend's columns fit again
        self.manual: set[pg.PlotWidget] = set()  # plots the user panned or zoomed
        self._ranges: dict[pg.PlotWidget, tuple] = {}  # as last set (set again only when they change)
        for p in (self.plot_loss, self.plot_dice, self.plot_lr):
            item = p.getPlotItem()
            item.vb.sigRangeChangedManually.connect(lambda *_, p=p: self.manual.add(p))
            item.autoBtn.clicked.connect(lambda *_, p=p: self._automatic(p))
        self.bool_show_all = QCheckBox("Show all", objectName="bool_loss_show_all")
        self.bool_show_all.setToolTip("Off: the loss axis leaves out the first batches' spike and rare outliers, "
                                      "so the rest stays readable. On: every point is in view.")
        self.bool_show_all.toggled.connect(lambda: self._automatic(self.plot_loss))
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(6)
        grid.addWidget(self.plot_loss, 0, 0)
        grid.addWidget(self.plot_dice, 0, 1)
        grid.addWidget(self.plot_lr, 0, 2)
        grid.addWidget(self.bool_show_all, 1, 0, Qt.AlignmentFlag.AlignLeft)
        grid.setRowStretch(0, 1)
        self.redraws = 0
        self._timer = QTimer(self, interval=REDRAW_MS)
        self._timer.timeout.connect(self.flush)
        self._timer.start()
        self.reset()

    def reset(self, codes: tuple[str, ...] = (), group_names: tuple[str, ...] = (),
              iters_per_epoch: int = 0, epochs: int = 0, volumetric: bool = False) -> None:
        """Empty plots for a run of `epochs` epochs of `iters_per_epoch` batches (0: not known)."""
        title = "Validation Dice (3-D, mean over scans)" if volumetric else "Validation Dice"
        self.plot_dice.getPlotItem().setTitle(plot_title(title))
        self.plot_loss.getPlotItem().setLabel("bottom", "iteration", **{"font-size": "8pt"})
        for p in (self.plot_loss, self.plot_dice, self.plot_lr):
            p.getPlotItem().clear()
            p.getPlotItem().legend.clear()
        self.manual.clear()
        self._ranges.clear()
        self.codes, self.iters_per_epoch, self.n_epochs = tuple(codes), int(iters_per_epoch), int(epochs)
        self.by_epoch = False  # the loss is plotted per epoch (a run opened from its files)
        self.total_iterations = self.iters_per_epoch * self.n_epochs
        self.it, self.loss, self.smooth, self.lrs = [], [], [], []
        self.epochs, self.valid_loss, self.valid_x, self.dice_mean = [], [], [], []
        self.dice: list[list[float]] = []
        self._avg, self._n = 0.0, 0
        pl = self.plot_loss
        self.c_raw = pl.plot([], [], pen=pg.mkPen(QColor(49, 130, 206, 70), width=1), name="per batch")
        self.c_smooth = pl.plot([], [], pen=pg.mkPen("#2b6cb0", width=2), name="smoothed")
        self.c_valid = pl.plot([], [], pen=pg.mkPen("#dd6b20", width=2), symbol="o", symbolSize=6,
                               symbolBrush="#dd6b20", symbolPen=None, name="validation")
        for c in (self.c_raw, self.c_smooth):
            c.setClipToView(True)
            c.setDownsampling(auto=True, method="peak")
        self.c_dice_mean = self.plot_dice.plot([], [], pen=pg.mkPen("#1a202c", width=2.5), symbol="o",
                                               symbolSize=6, symbolBrush="#1a202c", name="mean")
        self.c_dice = []
        for k, code in enumerate(self.codes):
            if k == 0:
                continue  # background Dice is not plotted
            col = overlay.class_color(k)
            self.c_dice.append((k, self.plot_dice.plot([], [], pen=pg.mkPen(QColor(*col), width=1.5,
                                style=Qt.PenStyle.DashLine), name=str(code))))
        self.c_lr = [self.plot_lr.plot([], [], pen=pg.mkPen(GROUP_COLORS[i % len(GROUP_COLORS)],
                                       width=2), name=short_group(n))
                     for i, n in enumerate(group_names)]
        for p in (self.plot_loss, self.plot_dice, self.plot_lr):
            fit_legend(p)
        self._dirty = False
        self._set_ranges(np.zeros((0, 0)))  # the new run's axes

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Resize and isinstance(watched, pg.PlotWidget):
            QTimer.singleShot(0, watched, lambda: fit_legend(watched))  # once the view has laid out the plot
        return False

    def add_batches(self, batches) -> None:
        for b in batches:
            loss = float(b.loss)
            self.it.append(int(b.iteration))
            self.loss.append(loss)
            if math.isfinite(loss):
                self._n += 1
                self._avg = 0.98 * self._avg + 0.02 * loss
            self.smooth.append(self._avg / (1 - 0.98 ** self._n) if self._n else float("nan"))
            self.lrs.append(tuple(float(x) for x in b.lrs))
            self.total_iterations = max(self.total_iterations, int(b.total_iterations))
        self._dirty = True

    def add_epoch(self, e) -> None:
        self.epochs.append(int(e.epoch) + 1)
        self.valid_loss.append(float(e.valid_loss))
        x = (int(e.epoch) + 1) * self.iters_per_epoch if self.iters_per_epoch else (
            self.it[-1] + 1 if self.it else int(e.epoch) + 1)
        self.valid_x.append(x)
        self.dice_mean.append(float(e.dice_mean))
        self.dice.append([float(d) for d in e.dice])
        self._dirty = True

    def show_history(self, rows: list[dict], codes: list[str], volumetric: bool = False) -> None:
        """The epochs of a run opened from disk (metrics.json rows): training and validation
        loss and Dice per epoch. Runs before epochs counted from 1 in files are shifted."""
        self.reset(tuple(codes), volumetric=volumetric)
        self.by_epoch = True
        self.plot_loss.getPlotItem().setLabel("bottom", "epoch", **{"font-size": "8pt"})
        first = min((int(r.get("epoch", 1)) for r in rows if "epoch" in r), default=1)
        shift = 1 if first == 0 else 0
        for row in rows:
            try:
                epoch = int(row["epoch"]) + shift
                dice = tuple(float(row.get(f"dice_{c}", math.nan)) for c in codes)
                self.add_epoch(SimpleNamespace(epoch=epoch - 1, valid_loss=float(row["valid_loss"]),
                                               dice_mean=float(row["dice_mean"]), dice=dice))
                self.it.append(epoch)
                self.smooth.append(float(row["train_loss"]))
                self.loss.append(math.nan)
            except (KeyError, TypeError, ValueError):
                continue  # a row from another version: skipped, the rest still shows
        self.n_epochs = len(self.epochs)
        note = pg.TextItem("Not in the run's files:\nshown while a run trains", color="#a0aec0", anchor=(0.5, 0.5))
        note.setPos((1 + max(self.n_epochs, 2)) / 2, -3.0)  # the middle of the ranges set below
        self.plot_lr.addItem(note)
        self.flush()

    def _automatic(self, plot: pg.PlotWidget) -> None:
        """`plot`'s axes follow the data again (after the user panned or zoomed it)."""
        self.manual.discard(plot)
        self._ranges.pop(plot, None)
        self._dirty = True
        self.flush()

    @Slot()
    def flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        it = np.asarray(self.it, float)
        self.c_raw.setData(it, np.asarray(self.loss, float))
        self.c_smooth.setData(it, np.asarray(self.smooth, float))
        self.c_valid.setData(np.asarray(self.valid_x, float), np.asarray(self.valid_loss, float))
        ep = np.asarray(self.epochs, float)
        self.c_dice_mean.setData(ep, np.nan_to_num(np.asarray(self.dice_mean, float), nan=0.0))
        for k, curve in self.c_dice:
            vals = [row[k] if k < len(row) else float("nan") for row in self.dice]
            curve.setData(ep, np.asarray(vals, float), connect="finite")
        lr = np.asarray(self.lrs, float) if self.lrs else np.zeros((0, 0))
        for g, curve in enumerate(self.c_lr):
            if g < lr.shape[1]:
                curve.setData(it, np.log10(np.maximum(lr[:, g], 1e-12)))
        single = len(it) == 1  # a line through one point draws nothing: show it as a dot
        for curve in (self.c_smooth, *self.c_lr):
            curve.setSymbol("o" if single else None)
            curve.setSymbolSize(6)
        self._set_ranges(lr)

    def _set_ranges(self, lr: np.ndarray) -> None:
        """The whole run along x from its start, the loss's robust range, Dice 0-1, LR in decades."""
        n_epochs = max(self.n_epochs, len(self.epochs), 1)
        epochs = (0.6, max(n_epochs, 2) + 0.4)  # whole epochs, from the first
        if self.by_epoch:
            steps = epochs
        else:
            steps = (0, max(self.total_iterations, (self.it[-1] + 1) if self.it else 0, 10))
        # every validation (or epoch) loss, and where the smoothed training loss is now
        points = self.valid_loss + (self.smooth if self.by_epoch else self.smooth[-1:])
        ranges = {self.plot_loss: (steps, loss_range([] if self.by_epoch else self.loss, points,
                                                     self.bool_show_all.isChecked())),
                  self.plot_dice: (epochs, (-0.03, 1.03)),  # room for the 0 and 1 labels
                  self.plot_lr: (steps, log_range(lr) if lr.size else (-4.0, -2.0))}
        for plot, xy in ranges.items():
            if plot not in self.manual and self._ranges.get(plot) != xy:
                self._ranges[plot] = xy
                plot.setRange(xRange=xy[0], yRange=xy[1], padding=0.02)
        axis = self.plot_dice.getPlotItem().getAxis("bottom")
        if n_epochs <= 12:
            axis.setTickSpacing(major=1, minor=1)  # whole epochs only
        else:
            axis.setTickSpacing()


class PreviewTiles(QWidget):
    """A few validation images with the current prediction blended in, refreshed every epoch."""

    def __init__(self, count: int = 4, parent=None):
        super().__init__(parent)
        self.setObjectName("preview_tiles")
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(6)
        self.tiles: list[QLabel] = []
        self.captions: list[QLabel] = []
        self.epoch = -1
        self._ensure(count)

    def _ensure(self, n: int) -> None:
        while len(self.tiles) < n:
            i = len(self.tiles)
            tile = QLabel(objectName=f"preview_tile_{i}", alignment=Qt.AlignmentFlag.AlignCenter)
            tile.setMinimumSize(96, 96)
            tile.setStyleSheet("QLabel{border:1px dashed #cbd5e0;border-radius:6px;color:#a0aec0;}"
                               "QLabel[filled=\"true\"]{border:none;}")
            tile.setText("—")
            cap = QLabel("", alignment=Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            cap.setStyleSheet("color:#4a5568;font-size:8pt;")
            self.grid.addWidget(tile, 0, i)
            self.grid.addWidget(cap, 1, i)
            self.grid.setRowStretch(0, 1)
            self.tiles.append(tile)
            self.captions.append(cap)

    def clear(self) -> None:
        self.epoch = -1
        for t, c in zip(self.tiles, self.captions):
            t.clear()
            t.setText("—")
            t.setProperty("filled", False)
            t.style().unpolish(t)
            t.style().polish(t)
            c.setText("")

    def show_preview(self, p) -> None:
        self.epoch = int(p.epoch)
        self._ensure(len(p.images))
        side = max(96, min(self.tiles[0].width(), self.tiles[0].height()) - 4)
        for i, (tile, cap) in enumerate(zip(self.tiles, self.captions)):
            if i >= len(p.images):
                tile.clear()
                cap.setText("")
                continue
            tile.setPixmap(overlay.overlay_pixmap(p.images[i], p.preds[i], side, 0.5))
            if not tile.property("filled"):
                tile.setProperty("filled", True)
                tile.style().unpolish(tile)
                tile.style().polish(tile)
            name = str(p.names[i]) if i < len(p.names) else ""
            cap.setText((name if len(name) < 22 else name[:20] + "…") + f"  · epoch {p.epoch + 1}")
