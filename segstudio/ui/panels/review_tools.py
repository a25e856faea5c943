"""The review's correction tools: thin Qt controls over the ReviewModel (which holds the tool,
the edits and the history), with the keys a labelling tool is expected to have."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QToolButton,
                               QWidget)

from segstudio.editing.review_model import MAX_RADIUS, MAX_TOLERANCE, ReviewModel
from segstudio.ui import overlay

# the Correct toggle while on: unmistakable (the app's buttons have no checked look of their own)
EDIT_ON_STYLE = ("QPushButton#button_edit_masks:checked { background: #dd6b20; color: white; font-weight: bold;"
                 " border: 1px solid #9c4221; }"
                 "QPushButton#button_edit_masks:checked:hover { background: #ed8936; }")
EDIT_OFF, EDIT_ON = "✎ Correct", "✎ Correcting"

TOOL_KEYS = {"brush": "B", "eraser": "E", "fill": "F", "polygon": "P"}
TOOL_TIPS = {"brush": "Brush: paint the chosen class (B; [ and ] change the radius)",
             "eraser": "Eraser: paint background (E)",
             "fill": "Fill: fill the closed region under the click with the chosen class (F); ± limits it\n"
                     "to pixels of similar grey value. A fill of most of the image (e.g. the background,\n"
                     "up to the edges) is only done on a second click",
             "polygon": "Polygon: drag a lasso around a region to fill it with the chosen class (P)"}


class ReviewTools(QWidget):
    """Edit toggle, tools, radius, class, undo/redo, accept/reset and save."""

    save_requested = Signal()
    editing_changed = Signal(bool)

    def __init__(self, model: ReviewModel, parent=None):
        super().__init__(parent)
        self.model = model
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        self.button_edit = QPushButton(EDIT_OFF, objectName="button_edit_masks", checkable=True)
        self.button_edit.setStyleSheet(EDIT_ON_STYLE)
        bold = QFont(self.button_edit.font())
        bold.setBold(True)  # as wide as its bold "Correcting" text: no jump when it turns on
        self.button_edit.setMinimumWidth(QFontMetrics(bold).horizontalAdvance(EDIT_ON) + 36)  # + padding
        self.button_edit.setToolTip("Correct the mask: left button paints, right button drags the view,\n"
                                    "Ctrl+wheel zooms. Corrections are saved beside your masks folder,\n"
                                    "never over your masks.")
        self.button_edit.toggled.connect(self._on_edit)
        h.addWidget(self.button_edit)
        self.group = QButtonGroup(self)
        self.tool_buttons = {}
        for tool, key in TOOL_KEYS.items():
            b = QToolButton(objectName=f"button_tool_{tool}", checkable=True, text=tool.capitalize())
            b.setToolTip(TOOL_TIPS[tool])
            b.clicked.connect(lambda _=False, t=tool: self.model.set_tool(t))
            self.group.addButton(b)
            self.tool_buttons[tool] = b
            h.addWidget(b)
        self.spin_radius = QSpinBox(objectName="spin_brush_radius", minimum=0, maximum=MAX_RADIUS)
        self.spin_radius.setPrefix("r ")
        self.spin_radius.setFixedWidth(64)
        self.spin_radius.setToolTip("Brush radius in image pixels ([ smaller, ] larger)")
        self.spin_radius.valueChanged.connect(lambda r: self.model.set_tool(radius=r))
        self.spin_tolerance = QSpinBox(objectName="spin_fill_tolerance", minimum=0, maximum=MAX_TOLERANCE)
        self.spin_tolerance.setPrefix("± ")
        self.spin_tolerance.setSpecialValueText("± any")
        self.spin_tolerance.setFixedWidth(72)
        self.spin_tolerance.setToolTip("Fill tolerance: only pixels whose grey value is within this of the\n"
                                       "clicked pixel's are filled (any: the whole region of that label)")
        self.spin_tolerance.valueChanged.connect(lambda t: self.model.set_tool(tolerance=t))
        self.combo_class = QComboBox(objectName="combo_paint_class")
        self.combo_class.setToolTip("The class painted (number keys 1-9)")
        self.combo_class.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo_class.setMinimumContentsLength(12)
        self.combo_class.activated.connect(lambda i: self.model.set_tool(label=i + 1))
        self.button_undo = QToolButton(objectName="button_undo", text="↶")
        self.button_undo.setToolTip("Undo (Ctrl+Z): every stroke of this session, on any image")
        self.button_redo = QToolButton(objectName="button_redo", text="↷")
        self.button_redo.setToolTip("Redo (Ctrl+Shift+Z)")
        self.button_accept = QPushButton("Accept prediction", objectName="button_accept_prediction")
        self.button_accept.setToolTip("Make the model's prediction this image's (or slice's) label (A)")
        self.button_reset = QPushButton("Reset", objectName="button_reset_truth")
        self.button_reset.setToolTip("Back to the ground truth as it was loaded (your mask or an earlier correction)")
        self.button_save = QPushButton("Save", objectName="button_save_corrections")
        self.button_save.setToolTip("Save the corrected masks to the corrections folder (Ctrl+S)")
        self.label_unsaved = QLabel("", objectName="label_unsaved")
        self.button_undo.clicked.connect(self.model.undo)
        self.button_redo.clicked.connect(self.model.redo)
        self.button_accept.clicked.connect(self.model.accept_prediction)
        self.button_reset.clicked.connect(self.model.reset_to_truth)
        self.button_save.clicked.connect(self.save_requested)
        for w in (self.spin_radius, self.spin_tolerance, self.combo_class, self.button_undo, self.button_redo,
                  self.button_accept, self.button_reset, self.button_save, self.label_unsaved):
            h.addWidget(w)
        h.addStretch(1)
        model.listen(self._on_model)
        self._sync_tool()
        self.update_state()

    def install_shortcuts(self, area: QWidget) -> None:
        """The tool keys, active while `area` (the review) has the focus."""
        def key(seq, fn):
            s = QShortcut(QKeySequence(seq), area, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
            s.activated.connect(fn)
        for tool, k in TOOL_KEYS.items():
            key(k, lambda t=tool: self.model.set_tool(t))
        key("[", lambda: self.model.set_tool(radius=self.model.tool.radius - 1 - self.model.tool.radius // 8))
        key("]", lambda: self.model.set_tool(radius=self.model.tool.radius + 1 + self.model.tool.radius // 8))
        for n in range(1, 10):
            key(str(n), lambda n=n: self.model.set_tool(label=n))
        key(QKeySequence.StandardKey.Undo, lambda: self.editing and self.model.undo())
        key("Ctrl+Shift+Z", lambda: self.editing and self.model.redo())
        key("Ctrl+Y", lambda: self.editing and self.model.redo())
        key("A", lambda: self.editing and self.model.accept_prediction())
        key(QKeySequence.StandardKey.Save, self.save_requested.emit)

    def set_codes(self, codes) -> None:
        self.combo_class.clear()
        for k, name in enumerate(codes):
            if k == 0:
                continue
            pix = QPixmap(12, 12)
            pix.fill(QColor(*overlay.class_color(k)))
            self.combo_class.addItem(QIcon(pix), f"{k} {name}" if k < 10 else str(name))
        self._sync_tool()

    def set_scan_mode(self, on: bool) -> None:
        """A scan in the three-plane viewer brings its own tools (scan_tools.py): the 2-D ones
        hide; the Correct toggle, undo, redo and Save stay."""
        for w in (*self.tool_buttons.values(), self.spin_radius, self.spin_tolerance, self.combo_class,
                  self.button_accept, self.button_reset):
            w.setVisible(not on)

    @property
    def editing(self) -> bool:
        return self.button_edit.isChecked()

    def _on_edit(self, on: bool) -> None:
        self.button_edit.setText(EDIT_ON if on else EDIT_OFF)
        self.update_state()
        self.editing_changed.emit(on)

    def _on_model(self, what: str, _detail) -> None:
        if what == "tool":
            self._sync_tool()
        if what in ("tool", "history", "labels", "saved", "current", "items"):
            self.update_state()

    def _sync_tool(self) -> None:
        t = self.model.tool
        self.tool_buttons[t.tool].setChecked(True)
        if self.spin_radius.value() != t.radius:
            self.spin_radius.setValue(t.radius)
        if self.spin_tolerance.value() != t.tolerance:
            self.spin_tolerance.setValue(t.tolerance)
        if 0 <= t.label - 1 < self.combo_class.count():
            self.combo_class.setCurrentIndex(t.label - 1)

    def update_state(self, busy: bool = False) -> None:
        mask = self.model.mask
        can = self.editing and mask is not None and not busy
        for w in (*self.tool_buttons.values(), self.spin_radius, self.combo_class):
            w.setEnabled(self.editing)
        self.spin_tolerance.setEnabled(self.editing and self.model.tool.tool == "fill")
        self.button_undo.setEnabled(self.model.history.can_undo and not busy)
        self.button_redo.setEnabled(self.model.history.can_redo and not busy)
        self.button_accept.setEnabled(can and mask.pred is not None)
        self.button_reset.setEnabled(can and mask.truth is not None)
        unsaved = len(self.model.unsaved())
        self.button_save.setEnabled(bool(unsaved) and not busy)
        self.label_unsaved.setText(f"{unsaved} unsaved" if unsaved else "")
