"""The three-plane viewer's labelling tools: thin Qt controls over a ScanEditor's ScanTool
(editing/scan_edit.py). Undo, redo, Save and the Correct toggle are the review's (review_tools.py);
its tool keys (B, E, F, [ ], 1-9) reach these through the ReviewModel's "tool" events."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QMenu, QSpinBox,
                               QToolButton, QWidget)

from segstudio.editing.review_model import MAX_RADIUS
from segstudio.editing.scan_edit import SCAN_TOOLS, ScanTool
from segstudio.ui import overlay

TOOL_NAMES = {"brush": "Brush", "eraser": "Eraser", "range": "Range brush", "fill": "Fill", "wand": "Wand",
              "island": "Island"}
TOOL_KEYS = {"range": "R", "wand": "W", "island": "I"}  # B, E, F are the review's own
TOOL_TIPS = {"brush": "Brush (B): paint the class in the plane under the mouse; [ and ] change the radius",
             "eraser": "Eraser (E): paint background",
             "range": "Range brush (R): paint only voxels whose value is within lo…hi\n"
                      "(in the scan's units: HU for CT, e.g. a liver brush that stops at fat)",
             "fill": "Fill (F): fill the closed region under the click in its plane",
             "wand": "Magic wand (W): the connected voxels within ± of the clicked value get the class\n"
                     "(in 3-D, or in the clicked plane only)",
             "island": "Remove island (I): delete the connected region (3-D) under the click"}


class ScanTools(QWidget):
    """Tool buttons, radius, class, intensity range, wand tolerance, interpolate and accept."""

    interpolate_requested = Signal()
    accept_requested = Signal(str)  # "slice", "structure", "scan"

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tool = ScanTool()
        h = QHBoxLayout(self)
        h.setContentsMargins(0, 0, 0, 0)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QToolButton] = {}
        for name in SCAN_TOOLS:
            b = QToolButton(objectName=f"button_scan_{name}", checkable=True, text=TOOL_NAMES[name])
            b.setToolTip(TOOL_TIPS[name])
            b.clicked.connect(lambda _=False, t=name: self.set_tool(t))
            self.group.addButton(b)
            self.buttons[name] = b
            h.addWidget(b)
        self.spin_radius = QSpinBox(objectName="spin_scan_radius", minimum=0, maximum=MAX_RADIUS, prefix="r ")
        self.spin_radius.setToolTip("Brush radius in voxels")
        self.combo_class = QComboBox(objectName="combo_scan_class")
        self.combo_class.setToolTip("The class painted (number keys 1-9)")
        self.combo_class.setMinimumContentsLength(10)
        self.spin_lo = QDoubleSpinBox(objectName="spin_range_lo", minimum=-1e6, maximum=1e6, decimals=0, prefix="lo ")
        self.spin_hi = QDoubleSpinBox(objectName="spin_range_hi", minimum=-1e6, maximum=1e6, decimals=0, prefix="hi ")
        for s in (self.spin_lo, self.spin_hi):
            s.setToolTip("Range brush: paint only voxels within lo…hi (the scan's units)")
        self.spin_tolerance = QDoubleSpinBox(objectName="spin_wand_tolerance", minimum=0, maximum=1e6, decimals=0,
                                             prefix="± ")
        self.spin_tolerance.setToolTip("Magic wand: voxels within this of the clicked value")
        self.bool_wand_3d = QCheckBox("3-D", objectName="bool_wand_3d")
        self.bool_wand_3d.setToolTip("Wand in 3-D (else only in the clicked plane)")
        self.button_interpolate = QToolButton(objectName="button_interpolate", text="Interpolate")
        self.button_interpolate.setToolTip("Fill the slices between the ones you labelled with the class\n"
                                           "(across the plane you last painted in; undoable)")
        self.button_interpolate.clicked.connect(self.interpolate_requested)
        self.button_accept = QToolButton(objectName="button_scan_accept", text="Accept ▾")
        self.button_accept.setToolTip("Accept the prediction for this slice, this structure or the whole scan")
        self.button_accept.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.button_accept)
        for scope, text in (("slice", "This slice (the plane under the mouse)"),
                            ("structure", "This structure (the chosen class, whole scan)"),
                            ("scan", "The whole scan")):
            menu.addAction(text, lambda s=scope: self.accept_requested.emit(s))
        self.button_accept.setMenu(menu)
        for w, width in ((self.spin_radius, 60), (self.spin_lo, 84), (self.spin_hi, 84), (self.spin_tolerance, 72)):
            w.setFixedWidth(width)
        for w in (self.spin_radius, self.combo_class, self.spin_lo, self.spin_hi, self.spin_tolerance,
                  self.bool_wand_3d, self.button_interpolate, self.button_accept):
            h.addWidget(w)
        h.addStretch(1)
        self.spin_radius.valueChanged.connect(lambda r: setattr(self.tool, "radius", int(r)))
        self.combo_class.activated.connect(lambda i: setattr(self.tool, "label", i + 1))
        self.spin_lo.valueChanged.connect(lambda v: setattr(self.tool, "lo", float(v)))
        self.spin_hi.valueChanged.connect(lambda v: setattr(self.tool, "hi", float(v)))
        self.spin_tolerance.valueChanged.connect(lambda v: setattr(self.tool, "tolerance", float(v)))
        self.bool_wand_3d.toggled.connect(lambda on: setattr(self.tool, "wand_3d", bool(on)))
        self.sync()

    def install_shortcuts(self, area: QWidget) -> None:
        for tool, key in TOOL_KEYS.items():
            s = QShortcut(QKeySequence(key), area, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
            s.activated.connect(lambda t=tool: self.set_tool(t))

    def set_codes(self, codes) -> None:
        self.combo_class.clear()
        for k, name in enumerate(codes):
            if k:
                pix = QPixmap(12, 12)
                pix.fill(QColor(*overlay.class_color(k)))
                self.combo_class.addItem(QIcon(pix), f"{k} {name}")
        self.sync()

    def set_tool(self, tool: str | None = None, **values) -> None:
        """Change the tool and/or its settings (radius, label, lo, hi, tolerance, wand_3d)."""
        if tool is not None:
            if tool not in SCAN_TOOLS:
                raise ValueError(f"unknown tool {tool!r}")
            self.tool.tool = tool
        for name, value in values.items():
            setattr(self.tool, name, type(getattr(self.tool, name))(value))
        self.sync()

    def sync(self) -> None:
        """The controls as the tool is."""
        t = self.tool
        self.buttons[t.tool].setChecked(True)
        for w, value in ((self.spin_radius, t.radius), (self.spin_lo, t.lo), (self.spin_hi, t.hi),
                         (self.spin_tolerance, t.tolerance)):
            if w.value() != value:
                w.setValue(value)
        self.bool_wand_3d.setChecked(t.wand_3d)
        if 0 <= t.label - 1 < self.combo_class.count():
            self.combo_class.setCurrentIndex(t.label - 1)
        self.spin_radius.setEnabled(t.tool in ("brush", "eraser", "range"))
        for w in (self.spin_lo, self.spin_hi):
            w.setEnabled(t.tool == "range")
        for w in (self.spin_tolerance, self.bool_wand_3d):
            w.setEnabled(t.tool == "wand")
