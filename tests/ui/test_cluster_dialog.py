""""Run on a cluster…": the dialog writes a job folder in the background; the Train area opens it."""

from __future__ import annotations

from PySide6.QtCore import Qt

from segstudio.config import DataConfig, TrainConfig
from segstudio.ui.panels.cluster_dialog import ClusterDialog


def make_dialog(qtbot, sample_dirs, **config) -> ClusterDialog:
    images, masks = sample_dirs
    dialog = ClusterDialog(TrainConfig(data=DataConfig(images=str(images), masks=str(masks)), **config))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_dialog_fills_in_and_writes_a_job(qtbot, sample_dirs, tmp_path):
    dialog = make_dialog(qtbot, sample_dirs, epochs=5)
    assert dialog.path_data_root.text() == str(sample_dirs[0].parent)  # the common parent
    dialog.value_nodes.setValue(2)
    dialog.value_gpus.setValue(8)
    dialog.value_hours.setValue(30)
    assert "16 training processes" in dialog.label_processes.text()
    dialog.path_job.setText(str(tmp_path / "job"))
    with qtbot.waitSignal(dialog.job_written, timeout=30000) as written:
        qtbot.mouseClick(dialog.button_write, Qt.MouseButton.LeftButton)
    job = written.args[0]
    qtbot.waitUntil(lambda: not dialog.runner.busy)
    assert job.path == tmp_path / "job" and dialog.button_write.isEnabled()
    assert str(job.path) in dialog.label_result.text() and "sbatch job.slurm" in dialog.label_result.text()
    slurm = (job.path / "job.slurm").read_text()
    assert "#SBATCH --nodes=2" in slurm and "--nproc_per_node 8" in slurm and "#SBATCH --time=1-06:00:00" in slurm
    config = TrainConfig.load(job.path / "config.json")
    assert (config.data.images, config.data.masks, config.epochs) == ("images", "masks", 5)
    dialog.grab().save(str(tmp_path / "cluster_dialog.png"))


def test_dialog_reports_a_used_job_folder(qtbot, sample_dirs, tmp_path):
    dialog = make_dialog(qtbot, sample_dirs)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "mine.txt").write_text("keep")
    dialog.path_job.setText(str(tmp_path / "used"))
    dialog.write()
    qtbot.waitUntil(lambda: not dialog.runner.busy, timeout=30000)
    assert "not an empty folder" in dialog.label_result.text() and dialog.job is None
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["mine.txt"]
    dialog.path_data_root.setText("")
    assert dialog.write() is False and "Choose a data root" in dialog.label_result.text()


def test_train_area_opens_the_dialog_with_its_settings(window, qtbot, sample_dirs):
    panel = window.train_panel
    assert panel.open_cluster_dialog() is None  # no data yet: a warning instead
    assert "Choose an image folder" in window.state.message.text
    images, masks = sample_dirs
    window.state.data_config = DataConfig(images=str(images), masks=str(masks))
    panel.settings.value_epochs.setValue(7)
    qtbot.mouseClick(panel.button_cluster, Qt.MouseButton.LeftButton)
    dialog = panel.findChild(ClusterDialog)
    assert dialog is not None and dialog.isVisible()
    assert dialog.config.epochs == 7 and dialog.config.data.images == str(images)
    dialog.reject()
