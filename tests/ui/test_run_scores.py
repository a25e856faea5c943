"""The app's side of the validation scores: the train worker scores a finished run, the Review
shows NSD and HD95 from the run folder, and File ▸ Save run report writes the report in a worker."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from segstudio.config import TrainConfig
from segstudio.evaluation.evaluate import EvaluationReport, MetricRow, summarise, write_report
from segstudio.inference import ReviewItem
from segstudio.reporting.after_training import boundary_scores
from segstudio.reporting.run_review import RunReview
from segstudio.training import events as ev
from segstudio.training.protocols import Session
from segstudio.workers import TrainWorker
from tests.conftest import implements

CODES = ("background", "liver", "kidney")


def item(name: str, dice: float) -> ReviewItem:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 1
    return ReviewItem(0, name, np.zeros((16, 16), np.uint8), mask, mask, (1.0, dice, math.nan), dice)


def row(case: str, label: int, nsd: float, hd95: float) -> MetricRow:
    return MetricRow(case, label, CODES[label], 0.5, nsd, hd95, 1.0, 10.0, 12.0, "", "px", "px")


def test_the_review_shows_nsd_and_hd95_from_the_run_folder_and_sorts_by_them(window, qtbot, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    report = EvaluationReport(2.0, rows=[row("a", 1, 0.9, 2.0), row("a", 2, 0.7, 4.0),  # means 0.8, 3.0
                                         row("b", 1, 0.2, 30.0), row("b", 2, 0.4, math.nan),  # 0.3, 30.0
                                         row("c", 1, 0.6, 8.0)])
    report.summary = summarise(report)
    write_report(report, run)
    panel = window.review_panel
    window.tabs.setCurrentIndex(1)  # the review comes in while training is shown
    panel._on_review(str(run), None, RunReview(SimpleNamespace(codes=list(CODES), window=""), None,
                                               [item("a", 0.9), item("b", 0.2), item("c", 0.5), item("d", 0.7)],
                                               boundary=boundary_scores(run)))
    window.tabs.setCurrentIndex(2)
    qtbot.wait(50)
    t = panel.table_review
    headers = [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]
    assert headers[:4] == ["Image", "Dice", "NSD", "HD95 px"]
    assert t.columnViewportPosition(3) + t.columnWidth(3) <= t.viewport().width()  # in view, not scrolled to
    assert "2 px" in t.horizontalHeaderItem(2).toolTip()

    def column(c: int) -> list[str]:
        return [t.item(r, c).text() for r in range(t.rowCount())]

    assert column(0) == ["b", "c", "d", "a"]  # worst Dice first, as before
    assert dict(zip(column(0), column(2))) == {"a": "0.800", "b": "0.300", "c": "0.600", "d": "—"}
    assert dict(zip(column(0), column(3))) == {"a": "3.0", "b": "30.0", "c": "8.0", "d": "—"}
    t.sortItems(3, Qt.SortOrder.AscendingOrder)
    assert column(0) == ["a", "c", "b", "d"]  # the closest boundaries first, unscored last
    t.sortItems(2, Qt.SortOrder.DescendingOrder)
    assert [name for name in column(0) if name != "d"] == ["a", "c", "b"]  # (unscored: NaN sorts as the largest)
    # a run without metrics_per_case.csv: no such columns
    other = tmp_path / "other"
    other.mkdir()
    panel._on_review(str(other), None, RunReview(SimpleNamespace(codes=list(CODES), window=""), None, [item("a", 0.9)],
                                                 boundary=boundary_scores(other)))
    assert [t.horizontalHeaderItem(c).text() for c in range(2)] == ["Image", "Dice"]
    assert "NSD" not in [t.horizontalHeaderItem(c).text() for c in range(t.columnCount())]


def test_save_run_report_writes_the_page_in_a_worker(window, qtbot, tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(TrainConfig().to_json())
    (run / "metrics.json").write_text(json.dumps([{"epoch": 0, "train_loss": 1.0, "valid_loss": 0.9,
                                                   "dice_mean": 0.5}]))
    out = tmp_path / "shared" / "my report"
    out.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(run))
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: asked.append(a) or (str(out), ""))
    action = window.findChild(type(window.action_save_report), "action_save_report")
    assert action is window.action_save_report and action in window.menuBar().actions()[0].menu().actions()
    with qtbot.waitSignal(window.report.runner.busy_changed, timeout=60000, check_params_cb=lambda busy: not busy):
        action.trigger()
        assert window.report.bar.isVisible() and not action.isEnabled()  # progress while it runs
    written = out.with_name("my report.html")
    assert window.report.written == written and written.is_file()
    assert "<html" in written.read_text(encoding="utf-8") and "Not in this report" in written.read_text()
    assert asked[0][2] == str(run / "report.html")  # the dialog offers the run folder
    assert window.state.message.text.startswith("Run report saved to") and window.state.message.action
    assert not window.report.bar.isVisible() and action.isEnabled()
    # a file the report did not write is left alone, with a message
    mine = tmp_path / "mine.html"
    mine.write_text("<p>mine</p>")
    with qtbot.waitSignal(window.report.runner.busy_changed, timeout=60000, check_params_cb=lambda busy: not busy):
        assert window.report.save(str(run), str(mine))
    assert mine.read_text() == "<p>mine</p>"
    assert window.state.message.level == "error" and "not a report segstudio wrote" in window.state.message.text


@implements(Session)
class Finished:
    """A session whose run has already finished in `run_dir`."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir

    def run(self, config, on_event, dataset=None, resume=""):
        return ev.Finished(self.run_dir, 0, 0.8, 1)

    def cancel(self):
        pass


def finish(qtbot, run_dir: Path) -> dict:
    worker = TrainWorker(TrainConfig(), session_factory=lambda: Finished(str(run_dir)))
    seen = {"warning": [], "scored": [], "phase": []}
    worker.warning.connect(seen["warning"].append)
    worker.scored.connect(seen["scored"].append)
    worker.phase_changed.connect(lambda p: seen["phase"].append(p.name))
    with qtbot.waitSignal(worker.result, timeout=300000) as result:
        worker.start()
    worker.wait(10000)
    seen["result"] = result.args[0]
    return seen


@pytest.mark.slow
def test_the_train_worker_scores_a_finished_run_and_a_failure_is_a_warning(qtbot, trained_run, sample_dirs,
                                                                           tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run[0].run_dir, run, ignore=shutil.ignore_patterns("previews"))
    config = json.loads((run / "config.json").read_text())
    config["data"].update(images=str(sample_dirs[0]), masks=str(sample_dirs[1]))
    (run / "config.json").write_text(json.dumps(config))
    seen = finish(qtbot, run)
    assert isinstance(seen["result"], ev.Finished) and not seen["warning"]
    assert (run / "metrics_per_case.csv").is_file() and "temperature" in json.loads((run / "model.json").read_text())
    assert "validation images scored" in seen["scored"][0] and seen["phase"]
    (run / "config.json").unlink()  # the data of the run is not known: not scored, but finished
    (run / "metrics_per_case.csv").unlink()
    seen = finish(qtbot, run)
    assert isinstance(seen["result"], ev.Finished) and not seen["scored"]
    assert "could not be scored" in seen["warning"][0] and not (run / "metrics_per_case.csv").exists()
