"""Review area: a run's validation images worst first (a fold set's every labelled image, out of
fold), or a predicted folder, in the viewer; open a run, predict a folder, locate a run's data."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Slot
from PySide6.QtWidgets import (
    QAbstractButton, QAbstractItemView, QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QHeaderView, QLabel,
    QProgressBar, QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from segstudio.config import TrainConfig
from segstudio.editing.review_model import ReviewModel
from segstudio.editing.store import MaskContext, item_key
from segstudio.ui import resources
from segstudio.ui.message_bar import MessageBar
from segstudio.ui.panels.review_corrections import CorrectionsMixin
from segstudio.ui.panels.review_predict import PredictMixin
from segstudio.ui.panels.review_scans import ScanMixin
from segstudio.ui.panels.review_tools import ReviewTools
from segstudio.ui.panels.review_viewer import ReviewViewer
from segstudio.ui.state import AppState, RunRef
from segstudio.ui.tasks import TaskRunner, show_state
from segstudio.workers import display_frame_task, review_task

FRAME_CACHE = 64  # decoded DICOM frames kept while stepping through the list
MIN_COLUMN, NAME_WIDTH = 56, (120, 240)  # px: any column; the name column (its contents within these)
LIST_SHARE = 0.35  # the list may take this share of the area's width to show its columns


def folder_size(path: str) -> int | None:
    """The bytes of the files under `path` (None when it cannot be read)."""
    try:
        return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and not f.is_symlink())
    except OSError:
        return None


def human_size(n: int) -> str:
    """497 MB, 1.2 GB, 12 KB (decimal units, as file managers show them)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} bytes"


class NumItem(QTableWidgetItem):
    """A table cell that sorts by number; NaN (class absent) sorts after every number."""

    def __init__(self, value: float, digits: int = 3):
        super().__init__("—" if not math.isfinite(value) else f"{value:.{digits}f}")
        self.value = float(value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other):
        key = lambda v: v if math.isfinite(v) else math.inf  # noqa: E731
        return key(self.value) < key(getattr(other, "value", math.inf))


class ReviewPanel(ScanMixin, CorrectionsMixin, PredictMixin, QWidget):
    """Lists ReviewItems (computed in a worker) and shows the selected one in the viewer.

    Watches `state.run`; reads the loaded dataset (reused when the run used it) and the data
    folders (never written into by a prediction)."""

    def __init__(self, state: AppState, parent=None):
        super().__init__(parent)
        self.setObjectName("panel_review")
        self.state = state
        self.items: list = []
        self.last_export = None  # the PredictReport of the last "Predict folder"
        self.run_dir = ""  # the run whose model is loaded
        self.run_config: TrainConfig | None = None
        self.folds: tuple[int, ...] = ()  # a fold set reviewed out of fold: its folds with a model
        self.predictor = None
        self.dataset = None
        self._validation_title = "Validation images"
        self._frames: dict[tuple[str, int], object] = {}  # (source, frame) -> ModalityFrame or None
        self._wanted_frame: tuple[str, int] | None = None
        self._generation = 0  # bumped when the items change: late decodes of older ones are dropped
        self._pending_run = None  # (run_dir, dataset, config) asked for while busy
        self.validation_items: list = []  # the run's review, to come back to after a prediction
        self.boundary = None  # the run folder's NSD and HD95 per case (reporting.after_training.BoundaryScores)
        self._fit_on_show = False  # the columns are fitted again when the area is next shown
        self.current = -1
        self.model = ReviewModel()  # items, edits and history, without Qt
        self.model.listen(self._on_model)
        self.continue_requested = None  # set by the main window: fn(run_dir) continues training
        self._wanted_mask = None  # the item whose mask should load next
        self._build()
        self.runner = TaskRunner(self, "review", self.progress_review,
                                 on_error=lambda m, d: self.post("error", m + (f"\n{d}" if d else "")))
        self.runner.busy_changed.connect(self._on_busy)
        self.runner.busy_changed.connect(lambda busy: busy or self._start_pending_run())
        self.frame_runner = TaskRunner(self, "frame")
        self.frame_runner.busy_changed.connect(lambda busy: busy or self._decode_wanted())
        self.mask_runner = TaskRunner(self, "mask")
        self.mask_runner.busy_changed.connect(lambda busy: busy or self._load_wanted_mask())
        self.save_runner = TaskRunner(self, "save",
                                      on_error=lambda m, d: self.post("error", f"Saving failed: {m}"))
        self.save_runner.busy_changed.connect(lambda busy: self.tools.update_state(busy))
        state.watch("run", self._on_run)

    # -- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.table_review = QTableWidget(0, 2, objectName="table_review")
        self.table_review.setHorizontalHeaderLabels(["Image", "Dice"])
        self.table_review.verticalHeader().setVisible(False)
        self.table_review.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table_review.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table_review.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table_review.setAlternatingRowColors(True)
        self.table_review.setSortingEnabled(True)
        header = self.table_review.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)  # numbers and their names
        header.setMinimumSectionSize(MIN_COLUMN)
        self.table_review.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table_review.currentCellChanged.connect(lambda r, *_: self._show_row(r))
        # sorting moves the current row: refresh its "(k/n)" position once the sort is done
        self.table_review.horizontalHeader().sortIndicatorChanged.connect(
            lambda *_: QTimer.singleShot(0, self._update_info))
        self.label_run = QLabel("No run loaded. Train a model or use File ▸ Open run.",
                                objectName="label_run", wordWrap=True)
        self.label_summary = QLabel("", objectName="label_summary", wordWrap=True, visible=False)
        self.progress_review = QProgressBar(objectName="progress_review", textVisible=True)
        show_state(self.progress_review, "Idle")
        self.button_open_run = QPushButton(resources.icon("run"), "Open run…", objectName="button_open_run")
        self.button_predict = QPushButton(resources.icon("export"), "Predict folder…",
                                          objectName="button_predict_folder", enabled=False)
        self.button_predict.setToolTip("Predict every image of a folder and save the masks as PNG\n"
                                       "(and as DICOM SEG for DICOM series)")
        self.button_open_run.clicked.connect(self.choose_run)
        self.button_predict.clicked.connect(lambda: self.predict_folder())
        self.group_items = QGroupBox("Validation images")
        self.group_items.setMinimumWidth(340)
        lv = QVBoxLayout(self.group_items)
        lv.addWidget(self.label_run)
        lv.addWidget(self.label_summary)
        lv.addWidget(self.table_review, 1)
        lv.addWidget(self.progress_review)
        row = QHBoxLayout()
        row.addWidget(self.button_open_run)
        row.addWidget(self.button_predict)
        lv.addLayout(row)
        self.button_show_validation = QPushButton("Back to the validation images",
                                                  objectName="button_show_validation")
        self.button_show_validation.clicked.connect(self.show_validation)
        self.button_show_validation.setVisible(False)
        lv.addWidget(self.button_show_validation)
        loop = QHBoxLayout()
        self.button_unlabelled = QPushButton("Predict unlabelled", objectName="button_predict_unlabelled",
                                             enabled=False)
        self.button_unlabelled.setToolTip("Predict the dataset's images that have no mask yet, most uncertain\n"
                                          "first: correct or accept them to add them to the training set")
        self.button_unlabelled.clicked.connect(lambda: self.predict_unlabelled())
        self.button_continue = QPushButton("Continue training", objectName="button_continue_training",
                                           enabled=False)
        self.button_continue.setToolTip("Train a new run that starts from this run's best model, on the\n"
                                        "dataset with your corrections (a few epochs at lower learning rates);\n"
                                        "a fold set: a new fold set, each fold from its parent fold")
        self.button_continue.clicked.connect(self.continue_training)
        loop.addWidget(self.button_unlabelled)
        loop.addWidget(self.button_continue)
        lv.addLayout(loop)
        self.viewer = ReviewViewer(self.model)
        self.tools = ReviewTools(self.model)
        self.tools.install_shortcuts(self)
        self.tools.save_requested.connect(self.save_corrections)
        self.tools.editing_changed.connect(self.viewer.set_editing)
        split = self.split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.group_items)
        split.addWidget(self._build_scan_viewer())
        split.setStretchFactor(1, 1)
        split.setSizes([400, 800])
        v = QVBoxLayout(self)
        v.addWidget(MessageBar("review", self.state))
        v.addWidget(self.tools)  # across the area: the list keeps the room its columns need
        v.addWidget(split, 1)
        self._install_keys()

    def post(self, level: str, text: str, action=None) -> None:
        self.state.post("review", level, text, action)

    # -- items -------------------------------------------------------------------------------
    def set_items(self, items: list, codes: tuple[str, ...] = (), by_uncertainty: bool = False) -> None:
        self.items = list(items)
        self.current = -1
        self._generation += 1
        codes = tuple(codes) or (tuple(f"class {i}" for i in range(len(items[0].dice))) if items else ())
        self.viewer.set_codes(codes)
        self.tools.set_codes(codes)
        ctx = MaskContext.of(self.dataset, self.run_dir) if self.dataset is not None else None
        self.model.set_items(self.items, ctx)
        self._scan_key = ""
        truth = any(it.target is not None for it in self.items)
        fg = list(range(1, len(codes))) if truth or not self.items else []  # no truth: no Dice
        scans = any(it.is_scan for it in self.items)
        ml = [f"{codes[k]} mL" for k in range(1, len(codes))] if scans else []
        parent = ["Parent Dice"] if any(math.isfinite(it.parent_dice) for it in self.items) else []
        unsure = ["Uncertainty"] if by_uncertainty else []
        known = self.boundary.by_case if self.boundary is not None and truth else {}
        boundary = ["NSD", f"HD95 {self.boundary.unit}"] if any(it.name in known for it in self.items) else []
        t = self.table_review
        t.setSortingEnabled(False)
        t.clearContents()
        dice = ["Dice"] if truth or not self.items else []
        t.setColumnCount(1 + len(dice) + len(boundary) + len(parent) + len(unsure) + len(fg) + len(ml))
        t.setHorizontalHeaderLabels(["Scan" if scans else "Image"] + dice + boundary + parent + unsure
                                    + [str(codes[k]) for k in fg] + ml)
        hd95 = 2 + len(dice) if boundary else -1  # its column: one decimal
        if boundary:
            self._explain_boundary(hd95 - 1)
        t.setRowCount(len(self.items))
        for row, item in enumerate(self.items):
            name = QTableWidgetItem(str(item.name))
            name.setData(Qt.ItemDataRole.UserRole, row)
            t.setItem(row, 0, name)
            values = ([item.dice_mean] if dice else []) + (list(known.get(item.name, (math.nan,) * 2))
                                                            if boundary else [])
            values += ([item.parent_dice] if parent else []) + ([item.uncertainty] if unsure else [])
            for col, value in enumerate(values, start=1):
                t.setItem(row, col, NumItem(float(value), digits=1 if col == hd95 else 3))
            first = 1 + len(values)
            for col, k in enumerate(fg, start=first):
                t.setItem(row, col, NumItem(float(item.dice[k]) if k < len(item.dice) else math.nan))
            for col, (_, predicted, _) in enumerate(item.volume_ml, start=first + len(fg)):
                t.setItem(row, col, NumItem(predicted, digits=1))
        t.setSortingEnabled(True)
        self._fit_columns()
        self._fit_on_show = not self.isVisible()  # a hidden splitter has no width to share yet
        if unsure:
            t.sortItems(1, Qt.SortOrder.DescendingOrder)
        else:
            t.sortItems(1 if dice else 0, Qt.SortOrder.AscendingOrder)
        if self.items:
            t.setCurrentCell(0, 0)
            self._show_row(0)
            self.viewer.fit()
        else:
            self.viewer.clear()
            self._show_flat()
            self.scan_viewer.set_data(None)

    def _explain_boundary(self, col: int) -> None:
        """Tooltips of the NSD and HD95 columns (from `col`): what they are and where they come from."""
        b, t = self.boundary, self.table_review
        t.horizontalHeaderItem(col).setToolTip(
            f"Normalised surface distance at {b.tolerance:g} {b.unit}: the share of both boundaries within\n"
            "the tolerance of the other (1 is best); the mean over the classes. Scored on the\n"
            "run's validation cases at their own size after training (metrics_per_case.csv)")
        t.horizontalHeaderItem(col + 1).setToolTip(
            f"95th percentile Hausdorff distance in {b.unit} (0 is best; empty when a class is missing\n"
            "from the mask or the prediction); the mean over the classes (metrics_per_case.csv)")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._fit_on_show:  # items listed while another area was shown
            self._fit_on_show = False
            self._fit_columns()

    def _fit_columns(self) -> None:
        """Number columns as wide as their numbers and names (Parent Dice, each class, mL), the
        name column as its names within NAME_WIDTH (longer ones elided in the middle, widened
        by hand); the list takes the room they need up to LIST_SHARE of the area, then scrolls."""
        t, header = self.table_review, self.table_review.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        t.setColumnWidth(0, min(max(t.sizeHintForColumn(0), header.sectionSizeHint(0), NAME_WIDTH[0]),
                                NAME_WIDTH[1]))
        for c in range(1, t.columnCount()):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        header.resizeSections()
        margins = self.group_items.layout().contentsMargins()
        needed = (header.length() + t.verticalScrollBar().sizeHint().width() + 2 * t.frameWidth()
                  + margins.left() + margins.right() + 4)
        sizes = self.split.sizes()
        total = sum(sizes)
        if total and sizes[0] < needed:
            left = min(needed, int(total * LIST_SHARE))
            self.split.setSizes([left, total - left])

    def _item_at_row(self, row: int):
        cell = self.table_review.item(row, 0) if row >= 0 else None
        if cell is None:
            return None, -1
        index = int(cell.data(Qt.ItemDataRole.UserRole))
        return self.items[index], index

    def _show_row(self, row: int) -> None:
        item, index = self._item_at_row(row)
        if item is None:
            return
        self.current = index
        self.model.select(index)
        if item.is_scan and item.source and Path(item.source).exists():  # full resolution, three planes
            self._show_scan(item)
            self._update_info()
            self.tools.update_state(self.save_runner.busy)
            return
        self._show_flat()
        key = (item.source, item.frame)
        self.viewer.show_item(item, self._frames.get(key))
        if item.source and not item.is_scan and key not in self._frames and self.predictor is not None:
            self._wanted_frame = key
            self._decode_wanted()
        if self._editable(item) and item_key(item) not in self.model.masks:
            self._wanted_mask = item
            self._load_wanted_mask()
        self._update_info()
        self.tools.update_state(self.save_runner.busy)

    def _decode_wanted(self) -> None:
        """Decode the current item's DICOM frame in a worker (the latest wish wins)."""
        key, self._wanted_frame = self._wanted_frame, None
        if key is None or key in self._frames:
            return
        if self.frame_runner.busy:
            self._wanted_frame = key
            return
        generation = self._generation
        self.frame_runner.start(display_frame_task, *key, self.predictor.window,
                                on_done=lambda frame: self._on_frame(key, frame, generation),
                                on_error=lambda *_: self._on_frame(key, None, generation))

    def _on_frame(self, key, frame, generation: int) -> None:
        """A decoded frame (None: shown as cached, and not tried again) for the current items."""
        if generation != self._generation:
            return
        if len(self._frames) >= FRAME_CACHE:
            self._frames.pop(next(iter(self._frames)))
        self._frames[key] = frame
        item = self.items[self.current] if 0 <= self.current < len(self.items) else None
        if item is not None and (item.source, item.frame) == key:
            self.viewer.set_frame(frame)

    def _update_info(self) -> None:
        row = self.table_review.currentRow()
        item, _ = self._item_at_row(row)
        if item is not None:
            dice = "no ground truth" if item.target is None else (
                f"mean {'3-D ' if item.is_scan else ''}Dice {float(item.dice_mean):.3f}")
            steps = ("↑/↓ scans, ←/→ or wheel step a plane" if self.showing_scan
                     else "↑/↓ scans, ←/→ or wheel slices" if item.is_scan else "↑/↓ to step")
            label = self.scan_viewer.label_info if self.showing_scan else self.viewer.label_info
            label.setText(f"{item.name} — {dice}  ({row + 1}/{len(self.items)}, {steps})")
            label.setToolTip("\n".join(
                f"{name}: {pred:.1f} mL predicted" + ("" if item.target is None else f", {true:.1f} mL true")
                for name, pred, true in item.volume_ml))

    def step(self, delta: int) -> None:
        t = self.table_review
        if t.rowCount():
            row = min(max(t.currentRow() + delta, 0), t.rowCount() - 1)
            t.setCurrentCell(row, 0)

    def _install_keys(self) -> None:
        """Arrow keys step slices (←/→, a scan) and items wherever in the viewer area the focus is
        (the image, its buttons and boxes, the table): never scrolling the table sideways. The
        sliders keep their own arrow keys."""
        self._arrow_widgets = {self.table_review, self.viewer.view_review,
                               *self.viewer.findChildren(QAbstractButton), *self.viewer.findChildren(QComboBox),
                               *self.tools.findChildren(QAbstractButton)}
        for w in self._arrow_widgets:
            w.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.KeyPress or obj not in self._arrow_widgets:
            return super().eventFilter(obj, event)
        key, scan = event.key(), self.viewer.item is not None and self.viewer.item.is_scan
        if event.modifiers() not in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier):
            return False
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Right):
            if self.showing_scan:
                self.scan_viewer.step_hovered(1 if key == Qt.Key.Key_Right else -1)
            elif scan:
                self.viewer.step_slice(1 if key == Qt.Key.Key_Right else -1)
            else:
                self.step(1 if key == Qt.Key.Key_Right else -1)
            return True
        if obj is self.viewer.view_review and key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown,
                                                      Qt.Key.Key_Up, Qt.Key.Key_PageUp):
            self.step(1 if key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown) else -1)
            return True
        return False

    # -- runs --------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.runner.busy

    def _on_run(self, run: RunRef | None) -> None:
        if run is not None and run.run_dir != self.run_dir:
            dataset = self.state.dataset_for(run.config.data, run.config.size) if run.config else None
            self.load_run(run.run_dir, dataset, run.config)

    def load_run(self, run_dir: str, dataset=None, config: TrainConfig | None = None) -> bool:
        """Load a run's model and predict its validation images (in a worker). The panel switches
        to the run (model, label, exports) only once that succeeded. While another task runs,
        that one is stopped and the run loads after it."""
        run_dir = str(run_dir)
        if self.runner.busy:
            self._pending_run = (run_dir, dataset, config)
            self.runner.cancel()
            return True
        return self.runner.start(review_task, run_dir, dataset, label="Predicting validation images…",
                                 on_done=lambda result: self._on_review(run_dir, config, result))

    def _start_pending_run(self) -> None:
        if self._pending_run is not None:
            pending, self._pending_run = self._pending_run, None
            self.load_run(*pending)

    def choose_run(self) -> None:
        from segstudio.runs import default_runs_dir

        path = QFileDialog.getExistingDirectory(self, "Open a run folder", str(default_runs_dir()))
        if path:
            self.load_run(path)

    def show_validation(self) -> None:
        """Back from a folder's predictions to the run's validation images."""
        self.group_items.setTitle(self._validation_title)
        self.set_items(self.validation_items, tuple(self.predictor.codes))
        self.button_show_validation.setVisible(False)

    def locate_data(self, images: str | None = None, masks: str | None = None) -> bool:
        """Point the current run at its data where it is now, and compute the review."""
        if not self.run_dir:
            return False
        images = images or QFileDialog.getExistingDirectory(self, "Where are the run's images now?")
        masks = masks or (images and QFileDialog.getExistingDirectory(self, "And its masks?", images))
        if not images or not masks:
            return False
        config = self.run_config or TrainConfig.load(Path(self.run_dir) / "config.json")
        config = replace(config, data=replace(config.data, images=images, masks=masks))
        return self.runner.start(review_task, self.run_dir, None, config.data,
                                 label="Predicting validation images…",
                                 on_done=lambda result: self._on_review(self.run_dir, config, result))

    def _on_review(self, run_dir: str, config, review) -> None:
        """Show a RunReview (reporting.run_review): a run's validation cases, or a fold set's
        every labelled case out of fold, worst first, with their mean Dice and its interval."""
        self.predictor, self.dataset, items, note = review.predictor, review.dataset, review.items, review.note
        self.run_dir, self.run_config, self.folds = run_dir, config, review.folds
        self._frames.clear()
        self.viewer.forget_levels()
        if self.state.run is None or self.state.run.run_dir != run_dir:
            self.state.run = RunRef(run_dir, config)
        self.tools.button_edit.setChecked(False)  # a run (re)opened starts by looking, not painting
        size = folder_size(run_dir)
        kind = f"Fold set of {len(review.folds) + len(review.missing)} folds" if review.out_of_fold else "Run"
        self.label_run.setText(f"{kind}: <b>{Path(run_dir).name}</b>"
                               + (f" · {'fold-set' if review.out_of_fold else 'run'} folder {human_size(size)}"
                                  if size is not None else ""))
        self.label_run.setToolTip(run_dir)
        scans = bool(items) and items[0].is_scan
        noun = "scan" if scans else "image"
        if review.out_of_fold:
            self._validation_title = f"All labelled {noun}s, out of fold" + (" (Dice in 3-D)" if scans else "")
        else:
            self._validation_title = "Validation scans (Dice in 3-D)" if scans else "Validation images"
        self.group_items.setTitle(self._validation_title)
        self.validation_items = list(items)
        self.button_show_validation.setVisible(False)
        self.boundary = review.boundary
        self.set_items(items, tuple(getattr(self.predictor, "codes", ()) or ()))
        self._show_summary(review, noun)
        self._update_loop_buttons()
        if review.missing:
            names = lambda folds: ", ".join(f"fold_{f}" for f in folds)  # noqa: E731 - the folders' names
            self.post("warning", f"{names(review.missing)} of {Path(run_dir).name}: no trained model yet. Their cases "
                                 f"are not listed, and Predict folder averages {names(review.folds)} only; "
                                 "File ▸ Resume run trains the rest.")
        if note:
            show_state(self.progress_review, "Model loaded; data not found")
            self.post("warning", f"The run's model is loaded, but its validation images could not be "
                                 f"read: {note.splitlines()[0]}\nPredict folder works without them; "
                                 "Locate data… computes the review.", ("Locate data…", self.locate_data))
        else:
            listed = "labelled" if review.out_of_fold else "validation"
            what = f"{len(items)} {listed} {noun}{'' if len(items) == 1 else 's'}"
            show_state(self.progress_review, what, full=True)
            self.post("info", f"Review ready: {what}, worst first" + (
                ", each predicted by the fold that did not train on it." if review.out_of_fold else "."))

    def _show_summary(self, review, noun: str) -> None:
        """The mean Dice over the listed cases with its 95% interval (a percentile bootstrap)."""
        summary = review.summary
        if not review.items or not summary.n:
            self.label_summary.setVisible(False)
            return
        where = (f"Out of fold ({len(review.folds)} fold{'s' if len(review.folds) > 1 else ''})" if review.out_of_fold
                 else "Validation")
        self.label_summary.setText(f"{where}: {summary.text()} {noun}{'s' if summary.n != 1 else ''}"
                                   + (f" ({summary.without} without foreground)" if summary.without else ""))
        self.label_summary.setToolTip(
            "The mean of the cases' Dice (the foreground classes' mean on each case) with a 95% confidence\n"
            "interval: the 2.5th to 97.5th percentile of the mean over 10,000 bootstrap resamples of the cases."
            + ("\nEach case is predicted by the one fold that did not train on it: the best place to find\n"
               "label errors, since every labelled case is seen by a model that never learnt its mask." if
               review.out_of_fold else ""))
        self.label_summary.setVisible(True)

    def cancel(self) -> None:
        self.runner.cancel()

    def wait(self, ms: int = 60000) -> bool:
        self._pending_run = None
        stopped = [self.runner.wait(ms), self.frame_runner.wait(ms), self.mask_runner.wait(ms),
                   self.save_runner.wait(ms), self.scan_runner.wait(ms), self.scan_viewer.runner.wait(ms)]
        return all(stopped)

    @Slot(bool)
    def _on_busy(self, busy: bool) -> None:
        self.button_open_run.setEnabled(not busy)
        self.button_predict.setEnabled(not busy and bool(self.run_dir))
        self._update_loop_buttons()

    def _update_loop_buttons(self) -> None:
        busy = self.runner.busy
        n = len(self.dataset.unlabelled) if self.dataset is not None else 0
        self.button_unlabelled.setText(f"Predict unlabelled ({n})" if n else "Predict unlabelled")
        self.button_unlabelled.setEnabled(not busy and bool(n) and self.predictor is not None)
        self.button_continue.setEnabled(not busy and bool(self.run_dir))
