"""The Review's outputs, mixed into ReviewPanel: predicting a folder (into a folder the user
accepts or chooses, created for them) with a banner that says what was and was not written,
and exporting the model. Split from review_panel.py, which lays the area out and manages runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QVBoxLayout)

from segstudio.ui.tasks import show_state
from segstudio.workers import export_task, predict_folder_task

SEG_NOTE = "DICOM SEG"  # the reason after it: what the predictor says of each SEG it could not write


class OutputFolderDialog(QDialog):
    """Where a prediction's masks go: a suggested folder that may not exist yet (a native folder
    dialog cannot accept one), editable, or another chosen with Choose…; created on OK."""

    def __init__(self, suggestion: str, parent=None):
        super().__init__(parent)
        self.setObjectName("dialog_output_folder")
        self.setWindowTitle("Predict folder: where to write the masks")
        self.path_out = QLineEdit(suggestion, objectName="path_predict_out")
        self.path_out.setMinimumWidth(420)
        choose = QPushButton("Choose…", objectName="button_choose_out")
        choose.clicked.connect(self._choose)
        self.label_note = QLabel("", objectName="label_out_note", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Predict")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        row = QHBoxLayout()
        row.addWidget(self.path_out, 1)
        row.addWidget(choose)
        v = QVBoxLayout(self)
        v.addWidget(QLabel("Write the masks to a folder of their own (your images and masks are never replaced):"))
        v.addLayout(row)
        v.addWidget(self.label_note)
        v.addWidget(self.buttons)
        self.path_out.textChanged.connect(self._update_note)
        self._update_note()

    @property
    def folder(self) -> Path:
        return Path(self.path_out.text().strip()).expanduser()

    def _update_note(self) -> None:
        folder, text = self.folder, self.path_out.text().strip()
        if not text:
            note = "Give a folder."
        elif folder.is_dir():
            note = ("This folder exists: masks segstudio wrote there before are replaced; "
                    "any other file in it is left alone.")
        elif folder.exists():
            note = "This is a file, not a folder."
        else:
            note = "This folder does not exist yet: it is created."
        self.label_note.setText(note)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(bool(text) and not (
            folder.exists() and not folder.is_dir()))

    def _choose(self) -> None:
        start = self.folder if self.folder.is_dir() else self.folder.parent
        path = QFileDialog.getExistingDirectory(self, "Write masks to", str(start))
        if path:
            self.path_out.setText(path)

    def accept(self) -> None:
        """Create the folder (never touching what is in it); stay open and say why if it cannot be."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self.label_note.setText(f"Cannot create {self.folder}: {e.strerror or e}")
            return
        super().accept()


def seg_summary(report) -> str:
    """"9 of 20 DICOM SEG files not written: <the commonest reason>" ("" when none failed)."""
    reasons = [p.reason.split(f"{SEG_NOTE}: ", 1)[-1] for p in report.seg_failures]
    if not reasons:
        return ""
    common, _ = Counter(reasons).most_common(1)[0]
    others = len(set(reasons)) - 1
    return (f"{len(reasons)} of {len(reasons) + len(report.dicom_segs)} DICOM SEG files not written: "
            f"{common}" + (f" (and {others} other reason{'s' if others > 1 else ''})" if others else ""))


class PredictMixin:
    """Needs the panel's run_dir, run_config, folds, predictor, runner, state, validation_items,
    group_items, progress_review, button_show_validation, set_items and post."""

    def predict_folder(self, images_dir: str | None = None, out_dir: str | None = None) -> bool:
        """Predict a folder of images with the current run's model, writing PNG masks."""
        if not self.run_dir:
            self.post("warning", "Open or train a run first.")
            return False
        if self.runner.busy:
            self.post("warning", "The review is busy; predict the folder when it is done.")
            return False
        images_dir = images_dir or QFileDialog.getExistingDirectory(self, "Images to predict")
        if not images_dir:
            return False
        if out_dir is None:
            dialog = OutputFolderDialog(str(Path(images_dir).parent / f"{Path(images_dir).name}-predictions"), self)
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return False
            out_dir = str(dialog.folder)
        data, run_data = self.state.data_config, self.run_config.data if self.run_config else None
        protected = (("dataset images", data.images), ("dataset masks", data.masks),
                     *((("training images", run_data.images), ("training masks", run_data.masks))
                       if run_data else ()))
        return self.runner.start(predict_folder_task, self.run_dir, images_dir, out_dir, self.predictor,
                                 protected, label="Predicting folder…", on_done=self._on_predicted)

    def _on_predicted(self, result) -> None:
        report, items = result
        self.last_export = report
        segs = f" and {len(report.dicom_segs)} DICOM SEG file(s)" if report.dicom_segs else ""
        first = f"Wrote {len(report.written)} masks{segs} to {report.out_dir}"
        if self.folds:  # a fold set predicts with the mean of its folds' probabilities
            first += f", each the average of {len(self.folds)} folds"
        if report.left_alone:
            first += f"; {len(report.left_alone)} existing file(s) left alone"
        if report.problems:
            first += f"; {len(report.problems)} image(s) could not be predicted"
        seg_failed = seg_summary(report)
        if seg_failed:
            first += f". {seg_failed}"
        remarks = report.mismatches + report.notes + report.seg_failures
        lines = [first + (" — hover for the list" if report.problems or report.left_alone or remarks else "")]
        lines += [f"skipped {p.path}: {p.reason}" for p in report.problems]
        lines += [f"left alone {p.path}: {p.reason}" for p in report.left_alone]
        lines += [f"{p.path}: {p.reason}" for p in remarks]
        level = "warning" if report.problems or report.left_alone or seg_failed or report.mismatches else "info"
        self.post(level, "\n".join(lines), ("Open folder", lambda: self.open_folder(report.out_dir)))
        if items:
            self.group_items.setTitle(f"Predicted {'scans' if items[0].is_scan else 'images'} (no ground truth)")
            self.set_items(items, tuple(self.predictor.codes))
            self.button_show_validation.setVisible(bool(self.validation_items))
        shown = f"; showing {len(items)}" if len(items) < len(report.written) else ""
        show_state(self.progress_review, f"Wrote {len(report.written)} masks{segs}{shown}", full=True)

    def export_model(self, out: str | None = None) -> bool:
        """Write the run's model as ONNX or TorchScript (chosen by the file's ending), checked
        against PyTorch, in a worker."""
        if not self.run_dir:
            self.post("warning", "Open or train a run first.")
            return False
        if self.runner.busy:
            self.post("warning", "The review is busy; export the model when it is done.")
            return False
        if out is None:
            out, _ = QFileDialog.getSaveFileName(self, "Export the model", str(Path(self.run_dir) / "model.onnx"),
                                                 "ONNX (*.onnx);;TorchScript (*.pt)")
        if not out:
            return False
        fmt = "torchscript" if Path(out).suffix.lower() in (".pt", ".pth", ".ts") else "onnx"
        return self.runner.start(export_task, self.run_dir, fmt, out, label="Exporting the model…",
                                 on_done=self._on_exported)

    def _on_exported(self, report) -> None:
        show_state(self.progress_review, f"Exported {Path(report.path).name}", full=True)
        self.post("info", f"Wrote {report.path} ({report.format}); its outputs match PyTorch within "
                          f"{report.max_abs_diff:.1e}. Classes, size, window and normalisation are in its "
                          "metadata (\"segstudio\").", ("Open folder", lambda: self.open_folder(str(Path(report.path).parent))))

    @staticmethod
    def open_folder(path: str) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(path))
