"""The dataset report (summary, classes, problems): display only."""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QPushButton, QSizePolicy,
    QTableWidget, QTableWidgetItem, QTextBrowser, QVBoxLayout,
)

from segstudio.ui import overlay, resources

MAX_NOTES = 6


class ReportView(QGroupBox):
    """Counts, split, mask convention, notes, the class table and the problem list."""

    def __init__(self, parent=None):
        super().__init__("Dataset report", parent)
        v = QVBoxLayout(self)
        # a text view: long lines wrap to its width and a long report scrolls, so content never
        # sizes the window (a label's width and height follow its text)
        self.label_summary = QTextBrowser(objectName="label_summary")
        self.label_summary.setPlainText("No dataset loaded.")
        self.label_summary.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.label_summary.setMinimumHeight(90)
        self.label_summary.setMaximumHeight(190)
        v.addWidget(self.label_summary)
        self.table_classes = QTableWidget(0, 4, objectName="table_classes")
        self.table_classes.setHorizontalHeaderLabels(["", "Class", "Mask value", "Pixels"])
        self.table_classes.verticalHeader().setVisible(False)
        header = self.table_classes.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Interactive)
        self.table_classes.setColumnWidth(0, 24)
        self.table_classes.setColumnWidth(2, 100)
        self.table_classes.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table_classes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table_classes.verticalHeader().setDefaultSectionSize(24)
        self._fit_class_table(3)
        v.addWidget(self.table_classes)
        head = QHBoxLayout()
        self.label_problems = QLabel("Problems", objectName="label_problems")
        self.button_copy_problems = QPushButton(resources.icon("copy"), "Copy",
                                                objectName="button_copy_problems")
        self.button_copy_problems.clicked.connect(self.copy_problems)
        head.addWidget(self.label_problems, 1)
        head.addWidget(self.button_copy_problems)
        v.addLayout(head)
        self.text_problems = QPlainTextEdit(objectName="text_problems", readOnly=True)
        self.text_problems.setMinimumHeight(48)
        self.text_problems.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text_problems.setPlaceholderText("Files that could not be used are listed here.")
        v.addWidget(self.text_problems, 1)

    def _fit_class_table(self, rows: int) -> None:
        t = self.table_classes
        header = t.horizontalHeader().sizeHint().height()
        t.setFixedHeight(header + rows * t.verticalHeader().defaultSectionSize() + 2 * t.frameWidth() + 2)

    def show_report(self, report, headline: str = "", folders: str = "") -> None:
        """The report; `headline`: why loading failed; `folders`: the folders read, when they
        are not the ones given."""
        if report.volumes:
            lines = [f"<b>{len(report.volumes)}</b> labelled scans ({report.layout} layout), "
                     f"{report.n_train + report.n_valid} slices — <b>{report.n_train}</b> train, "
                     f"<b>{report.n_valid}</b> validation"]
        else:
            lines = [f"<b>{report.n_pairs}</b> image/mask pairs ({report.n_images} images, "
                     f"{report.n_masks} masks) — <b>{report.n_train}</b> train, "
                     f"<b>{report.n_valid}</b> validation"]
        if folders:
            lines.append(html.escape(folders))
        if report.n_unlabelled:
            lines.append(f"{report.n_unlabelled} image(s) without a mask: not used for training")
        if headline:
            lines.insert(0, f"<b>Could not load the dataset.</b> {html.escape(headline)}")
        if report.cannot_train:
            lines.append(f"<b>Cannot train:</b> {html.escape(report.cannot_train)}")
        if report.split:
            lines.append(f"Split: {html.escape(report.split)}")
        if report.mask_convention:
            lines.append(f"Masks: {html.escape(report.mask_convention)}")
        lines += [html.escape(v.line()) for v in report.volumes[:MAX_NOTES]]
        if len(report.volumes) > MAX_NOTES:
            lines.append(f"… and {len(report.volumes) - MAX_NOTES} more scans")
        lines += [f"<i>{html.escape(note)}</i>" for note in report.notes[:MAX_NOTES]]
        if len(report.notes) > MAX_NOTES:
            lines.append(f"<i>… and {len(report.notes) - MAX_NOTES} more notes (Copy the report)</i>")
        self.label_summary.setHtml("<br>".join(lines))
        self.label_summary.setToolTip("\n".join(report.notes))
        self._show_classes(report.classes)
        problems = report.problems()
        self.label_problems.setText(f"Problems ({len(problems)})")
        self.text_problems.setPlainText("\n".join(f"{p.path}: {p.reason}" for p in problems))

    def _show_classes(self, classes) -> None:
        self.table_classes.setRowCount(len(classes))
        self._fit_class_table(min(max(len(classes), 1), 6))
        for row, c in enumerate(classes):
            swatch = QTableWidgetItem()
            if c.index > 0:
                swatch.setBackground(QColor(*overlay.class_color(int(c.index))))
            share = float(c.pixel_share)
            cells = [swatch, QTableWidgetItem(str(c.name)), QTableWidgetItem(str(c.value)),
                     QTableWidgetItem(f"{100 * share:.2f} %" if np.isfinite(share) else "—")]
            cells[2].setToolTip(str(c.value))
            for col, item in enumerate(cells):
                self.table_classes.setItem(row, col, item)

    def show_failure(self, message: str) -> None:
        self.label_summary.setHtml(f"<b>Could not load the dataset.</b><br>{html.escape(message)}")

    def clear(self) -> None:
        self.table_classes.setRowCount(0)
        self.label_problems.setText("Problems")
        self.text_problems.clear()

    @Slot()
    def copy_problems(self) -> None:
        QGuiApplication.clipboard().setText(self.text_problems.toPlainText())
