"""The main window opens with its three areas, menus, status bar and persisted settings."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMessageBox, QPushButton, QWidget

from segstudio.config import Arch, TrainConfig
from segstudio.ui.main_window import MainWindow
from segstudio.ui.settings import Settings

NAMES = ["panel_data", "panel_train", "panel_review", "combo_arch", "bool_pretrained", "value_size",
         "value_bs", "value_epochs", "combo_schedule", "combo_loss", "bool_augment", "combo_device",
         "slider_lr", "value_lr_lo", "value_lr_hi", "button_train", "button_stop", "button_find_lr",
         "plot_loss", "plot_dice", "plot_lr", "plot_lr_groups", "plot_lr_find", "preview_tiles",
         "text_log", "progress_train", "table_review", "view_review", "slider_opacity",
         "bool_show_pred", "bool_show_truth", "bool_compare", "path_images", "path_masks",
         "combo_window", "list_thumbnails", "text_problems", "button_load", "progress_load"]


def test_window_opens_with_three_areas(window):
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == ["Data", "Train", "Review"]
    missing = [n for n in NAMES if window.findChild(QWidget, n) is None]
    assert not missing
    assert window.findChild(QPushButton, "button_stop").isEnabled() is False
    assert not window.windowIcon().isNull()
    menus = [a.text() for a in window.menuBar().actions()]
    assert menus == ["&File", "&Help"]
    for name in ("action_open_images", "action_open_masks", "action_open_sample", "action_open_run",
                 "action_predict_folder", "action_quit", "action_about", "action_versions"):
        assert window.findChild(type(window.action_quit), name) is not None, name


def test_status_bar_shows_device(window, qtbot):
    from segstudio.workers import probe_environment

    window.probe.start(probe_environment, on_done=lambda env: setattr(window.state, "environment", env))
    qtbot.waitUntil(lambda: window.environment is not None, timeout=60000)
    qtbot.waitUntil(lambda: not window.probe.busy, timeout=10000)
    text = window.findChild(QLabel, "label_device").text()
    assert text.startswith("Device: ") and ("CPU" in text or "GPU" in text or "NVIDIA" in text)
    # the pretrained note reflects the (empty, isolated) torch cache
    settings = window.train_panel.settings
    settings.bool_pretrained.setChecked(True)
    assert (not settings.label_pretrained_note.isHidden()) == (not any(window.environment["pretrained"].values()))


def test_versions_dialog(window, qtbot):
    box = window.show_versions()
    assert "PySide6" in box.text() and "segstudio" in box.text()
    box.close()


def test_settings_persist_between_windows(qtbot, runs_dir):
    w = MainWindow(probe=False)
    qtbot.addWidget(w)
    s = w.train_panel.settings
    s.value_epochs.setValue(7)
    s.combo_arch.setCurrentIndex(s.combo_arch.findData("resnet18"))
    s.set_lrs(2e-4, 5e-3)
    s.text_run_name.setText("liver-v2")
    s.text_run_name.editingFinished.emit()
    w.data_panel.set_folders("/some/images", "/some/masks")
    w.data_panel.combo_labels.setCurrentIndex(w.data_panel.combo_labels.findData("instances"))
    w.data_panel.value_valid_pct.setValue(30)
    w.data_panel.combo_window.setCurrentText("lung")
    w.tabs.setCurrentIndex(1)
    w.close()
    w2 = MainWindow(probe=False)
    qtbot.addWidget(w2)
    cfg = w2.train_panel.settings.config()
    assert (cfg.epochs, cfg.arch, cfg.lr_lo, cfg.lr_hi) == (7, Arch.resnet18, 2e-4, 5e-3)
    assert cfg.run_name == "liver-v2"
    assert w2.data_panel.path_images.text() == "/some/images"
    data = w2.data_panel.data_config()
    assert (data.valid_pct, data.window, data.labels) == (0.3, "lung", "instances")
    assert w2.tabs.currentIndex() == 1
    w2.close()


def test_settings_from_another_version_are_dropped(qtbot):
    s = Settings()
    s.set_train_config(TrainConfig(epochs=3))
    s.set_value("version", 999)
    s.sync()
    assert Settings().train_config() is None


def test_about_does_not_block(window, qtbot, monkeypatch):
    shown = []
    monkeypatch.setattr(QMessageBox, "about", lambda *a: shown.append(a))
    window.findChild(type(window.action_quit), "action_about").trigger()
    assert shown


def test_every_setting_has_its_widget(window):
    """Config fields are bound to widgets by name: a field without one fails here."""
    from dataclasses import fields

    from segstudio.config import DataConfig

    train = set(window.train_panel.settings.binding.widgets)
    # init_from is set by "Continue training" for one run, not edited as a setting
    assert train == {f.name for f in fields(TrainConfig)} - {"data", "lr_lo", "lr_hi", "init_from"}
    # folds/fold/fold_of: set for each fold of a fold set (the Train area's Folds setting, continuing one)
    assert set(window.data_panel.binding.widgets) == {f.name for f in fields(DataConfig)} - {
        "split_seed", "folds", "fold", "fold_of"}
    s = window.train_panel.settings
    s.path_weights_path.setText("/weights/resnet34.pth")
    s.path_weights_path.editingFinished.emit()
    assert window.state.train_config.weights_path == "/weights/resnet34.pth"


def test_content_never_sets_the_window_width(window, qtbot):
    from segstudio.data.report import DatasetReport

    width = window.width()
    report = DatasetReport("/i", "/m", n_images=3, n_masks=3, n_pairs=3,
                           mask_convention="label image values " + ",".join(map(str, range(400))),
                           notes=["x" * 3000])
    window.data_panel.report_view.show_report(report)
    qtbot.wait(50)
    assert window.width() == width and window.minimumSizeHint().width() < 1400


def test_an_absurd_saved_size_is_not_restored(qtbot):
    w = MainWindow(probe=False)
    qtbot.addWidget(w)
    w.resize(10475, 900)
    w.close()
    w2 = MainWindow(probe=False)
    qtbot.addWidget(w2)
    room = w2.screen().availableGeometry()
    assert w2.width() <= room.width() and w2.height() <= room.height()
    w2.close()


def test_status_bar_and_progress_say_what_runs(window, qtbot):
    """A long task without a known total (the ONNX export) is named in the status bar, whatever
    else ends meanwhile, and its progress bar shows text with the time it has taken."""
    import threading

    from segstudio.ui.tasks import progress_text

    release = threading.Event()

    def export(*, progress, should_stop):
        progress(0, 0, "Exporting and checking the onnx model")
        release.wait(30)

    review = window.review_panel
    assert review.runner.start(export, label="Exporting the model…", on_done=lambda _: None)
    qtbot.waitUntil(lambda: "Exporting and checking" in review.progress_review.text(), timeout=10000)
    assert window.label_state.text() == "Exporting the model…"
    window.state.training = "train"  # a run starts and ends while the export goes on
    window.state.training = ""
    assert window.label_state.text() == "Exporting the model…"
    release.set()
    qtbot.waitUntil(lambda: not review.runner.busy, timeout=10000)
    assert window.label_state.text() == "Idle"
    assert progress_text(0, 0, "Exporting", elapsed=65.0) == "Exporting · 1:05 elapsed"


def test_train_settings_start_from_train_config(qtbot):
    """The one default (TrainConfig, resnet18): a first start shows exactly its values."""
    from dataclasses import replace

    w = MainWindow(probe=False)
    qtbot.addWidget(w)
    s = w.train_panel.settings
    lo, hi = TrainConfig().lrs(s.effective_pretrained())
    assert s.config() == replace(TrainConfig(), lr_lo=lo, lr_hi=hi)
    assert s.combo_arch.currentData() == TrainConfig().arch.value == Arch.resnet18.value
    w.close()
