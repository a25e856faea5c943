"""The Train area's Time setting: minutes shown, seconds in the config, the epochs then chosen by the run."""

from segstudio.config import TrainConfig
from segstudio.ui.panels.train_settings import TrainSettings


def test_the_time_setting_is_the_configs_budget_in_minutes(qtbot):
    settings = TrainSettings()
    qtbot.addWidget(settings)
    assert settings.config().time_budget == 0 and settings.value_epochs.isEnabled()
    settings.value_time_budget.setValue(5)
    assert settings.config().time_budget == 300.0
    assert not settings.value_epochs.isEnabled()  # the budget chooses the epochs
    settings.set_config(TrainConfig(time_budget=90))
    assert settings.value_time_budget.value() == 1.5
    settings.set_config(TrainConfig())
    assert settings.value_time_budget.text().startswith("Off") and settings.value_epochs.isEnabled()


def test_the_progress_shows_the_epochs_a_time_budget_chose(window):
    from segstudio.config import TrainConfig as Config
    from tests.ui.test_train import batch, epoch_end, started

    panel = window.train_panel
    panel._config = Config(time_budget=60)
    panel._on_started(started(epochs=10, iters_per_epoch=10))  # the configured epochs, before the budget chose
    panel._on_batches([batch(i, total=40) for i in range(5)])  # sized to 4 epochs after the first steps
    assert panel.progress_train.format() == "Epoch 1/4 · batch 5/10"
    panel._on_epoch(epoch_end(0, epochs=4))
    assert panel.progress_train.format() == "Epoch 2/4"
