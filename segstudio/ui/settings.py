"""Persistent GUI settings (QSettings): window state, last folders, last TrainConfig; versioned."""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings

from segstudio.config import TrainConfig

SETTINGS_VERSION = 1
ORG = "segstudio"
APP = "segstudio"


class Settings:
    """A thin typed wrapper; settings written by another version are dropped, not misread."""

    def __init__(self, qsettings: QSettings | None = None):
        # INI everywhere (no Windows registry); tests redirect it with QSettings.setPath.
        self._s = qsettings if qsettings is not None else QSettings(
            QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORG, APP)
        if self._s.value("version", None) not in (SETTINGS_VERSION, str(SETTINGS_VERSION)):
            self._s.clear()
            self._s.setValue("version", SETTINGS_VERSION)

    # -- folders -----------------------------------------------------------------------------
    def last_folder(self, key: str) -> str:
        return str(self._s.value(f"folders/{key}", "") or "")

    def set_last_folder(self, key: str, path: str) -> None:
        self._s.setValue(f"folders/{key}", str(path))

    # -- training settings -------------------------------------------------------------------
    def train_config(self) -> TrainConfig | None:
        text = self._s.value("train/config_json", "")
        if not text:
            return None
        try:
            return TrainConfig.from_json(str(text))
        except (ValueError, TypeError, KeyError):
            return None

    def set_train_config(self, config: TrainConfig) -> None:
        self._s.setValue("train/config_json", config.to_json())

    # -- window ------------------------------------------------------------------------------
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        geom = self._s.value("window/geometry", None)
        state = self._s.value("window/state", None)
        return (geom if isinstance(geom, QByteArray) else None,
                state if isinstance(state, QByteArray) else None)

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self._s.setValue("window/geometry", geometry)
        self._s.setValue("window/state", state)

    def value(self, key: str, default=None):
        return self._s.value(key, default)

    def set_value(self, key: str, value) -> None:
        self._s.setValue(key, value)

    def sync(self) -> None:
        self._s.sync()
