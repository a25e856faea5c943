"""The Review's correction loop, mixed into ReviewPanel: loading each item's mask for editing in a
worker, following the ReviewModel, saving corrections, predicting the unlabelled images and
continuing training. Split from review_panel.py, which lays the area out and manages runs."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from segstudio.editing.store import item_key
from segstudio.ui.tasks import show_state
from segstudio.workers import load_mask_task, save_masks_task, unlabelled_task


class CorrectionsMixin:
    """Needs the panel's model, dataset, predictor, run_dir, items, table_review, viewer, tools,
    runners (runner, mask_runner, save_runner), state and post."""

    def _editable(self, item) -> bool:
        """Only the dataset's own images (labelled or not) are corrected: a correction joins its
        training set, so an image from another folder would pair with the wrong one."""
        if self.model.ctx is None or not item.source or self.dataset is None:
            return False
        return item.index >= 0 or item.source in set(self.dataset.unlabelled)

    def _load_wanted_mask(self) -> None:
        """Load the current item's mask at its original size in a worker (the latest wish wins)."""
        item, self._wanted_mask = self._wanted_mask, None
        if item is None or item_key(item) in self.model.masks:
            return
        if self.mask_runner.busy:
            self._wanted_mask = item
            return
        generation = self._generation
        self.mask_runner.start(load_mask_task, item, self.model.ctx, self.predictor,
                               on_done=lambda mask: self._on_mask(mask, generation),
                               on_error=lambda m, d: self._on_mask_error(item, m, generation))

    def _on_mask(self, mask, generation: int) -> None:
        if generation != self._generation:
            return
        self.model.add_mask(mask)
        if mask.recovered:
            self.post("warning", f"{mask.name}: unsaved corrections from an earlier session were restored "
                                 "(Save keeps them, Reset or Undo drops them).")
        if self.viewer.item is self.model.item:
            self.viewer.show_item(self.viewer.item, self.viewer.frame)
        self.tools.update_state(self.save_runner.busy)

    def _on_mask_error(self, item, message: str, generation: int) -> None:
        if generation == self._generation and item is self.model.item:
            self.post("warning", f"{item.name} cannot be corrected here: {message}")

    def _on_model(self, what: str, detail) -> None:
        if what == "labels":
            self.viewer.update_labels(detail)
        elif what == "current":  # an undo/redo went to another item: select its row
            row = self._row_of(detail)
            if row >= 0 and row != self.table_review.currentRow():
                self.table_review.setCurrentCell(row, 0)
        elif what == "slice" and detail != self.viewer.slice:
            self.viewer.show_slice(detail)
        elif what == "warning":
            self.post("warning", str(detail))

    def _row_of(self, index: int) -> int:
        for row in range(self.table_review.rowCount()):
            cell = self.table_review.item(row, 0)
            if cell is not None and int(cell.data(Qt.ItemDataRole.UserRole)) == index:
                return row
        return -1

    def save_corrections(self) -> bool:
        """Save every corrected mask to the corrections folder: snapshots taken here, written in
        a worker, marked saved here (an edit made meanwhile stays unsaved)."""
        if not self.model.unsaved() or self.save_runner.busy:
            return False
        return self.save_runner.start(save_masks_task, self.model.prepare_save(), label="Saving corrections…",
                                      on_done=self._on_saved)

    def _on_saved(self, results) -> None:
        written, problems = self.model.finish_save(results)
        saved = {job.mask.key: path for job, path, _ in results if path is not None}
        for row in range(self.table_review.rowCount()):
            cell = self.table_review.item(row, 0)
            item = self.items[int(cell.data(Qt.ItemDataRole.UserRole))]
            path = saved.get(item_key(item))
            if path is not None and not cell.text().endswith(" ✎"):
                cell.setText(cell.text() + " ✎")
                cell.setToolTip(f"corrected: {path}")
        if written:
            self.state.dataset_key = None  # the next training reads the data again, corrections included
            folder = Path(written[0]).parent
            self.post("warning" if problems else "info",
                      f"Saved {len(written)} corrected mask(s) to {folder} (your masks are unchanged); "
                      "training uses them from now on." + "".join(f"\n{p}" for p in problems),
                      ("Continue training", self.continue_training) if self.run_dir else None)
        elif problems:
            self.post("error", "Nothing was saved:\n" + "\n".join(problems))
        self.tools.update_state()

    def continue_training(self) -> bool:
        """Start a run from this run's best model on the corrected data (in the Train area)."""
        if not self.run_dir or self.continue_requested is None:
            return False
        if self.model.unsaved():
            self.post("warning", "Save your corrections first (Ctrl+S): training reads them from disk.")
            return False
        return bool(self.continue_requested(self.run_dir))

    def predict_unlabelled(self) -> bool:
        """Predict the dataset's images without a mask, most uncertain first."""
        if self.predictor is None or self.dataset is None or not self.dataset.unlabelled or self.runner.busy:
            return False
        return self.runner.start(unlabelled_task, self.predictor, self.dataset,
                                 label="Predicting unlabelled images…", on_done=self._on_unlabelled)

    def _on_unlabelled(self, result) -> None:
        items, problems = result
        n = len(self.dataset.unlabelled)
        self.group_items.setTitle("Unlabelled images, most uncertain first")
        self.set_items(items, tuple(self.predictor.codes), by_uncertainty=True)
        self.button_show_validation.setVisible(bool(self.validation_items))
        shown = f" (the {len(items)} most uncertain shown)" if len(items) < n else ""
        lines = [f"Predicted {n} unlabelled image(s){shown}. Correct the masks (✎ Correct) or accept "
                 "the prediction (A), then Save: each saved mask joins the training set."]
        lines += [f"{Path(f).name}: {why}" for f, why in problems]
        self.post("warning" if problems else "info", "\n".join(lines))
        show_state(self.progress_review, f"{len(items)} unlabelled image(s), most uncertain first", full=True)

