"""The review viewer's window and level, mixed into ReviewViewer: the slider's range in the image's
own units (HU for CT), the window last used in each unit, and the CT presets."""

from __future__ import annotations

import math

from PySide6.QtCore import Slot

from segstudio.preprocess.windowing import WINDOW_PRESETS

CUSTOM, PRESET_HINT = "Custom", "Preset…"


class LevelsMixin:
    """Needs the viewer's slider_levels, label_levels, combo_preset, image_item, _level_unit
    (None: 8-bit display values; else the DICOM unit, "HU" or "") and _levels_by_unit."""

    def forget_levels(self) -> None:
        """A new run: start again from its training window."""
        self._levels_by_unit.clear()

    def _set_level_range(self, frame) -> None:
        """Slider range in the displayed units; reset to the training window when they change."""
        if frame is None:
            lo, hi, unit, default = 0, 255, None, (0, 255)
        else:
            width, level = frame.window
            default = (math.floor(level - width / 2), math.ceil(level + width / 2))
            lo = min(math.floor(float(frame.values.min())), default[0])
            hi = max(math.ceil(float(frame.values.max())), default[1], lo + 1)
            unit = frame.unit
        slider = self.slider_levels
        self.combo_preset.setEnabled(unit == "HU")
        if unit != self._level_unit:  # back in a unit: the window the user had there
            self._level_unit = unit
            levels = self._levels_by_unit.get(unit, default)
            slider.setRange(min(lo, levels[0]), max(hi, levels[1]))
            slider.setValue(levels)
        elif unit is not None:
            keep = slider.value()
            slider.setRange(min(lo, slider.minimum()), max(hi, slider.maximum()))
            slider.setValue(keep)
        self._show_levels(slider.value())

    @Slot(int)
    def _apply_preset(self, index: int) -> None:
        name = self.combo_preset.itemText(index)
        if name in WINDOW_PRESETS and self._level_unit == "HU":
            width, level = WINDOW_PRESETS[name]
            lo, hi = math.floor(level - width / 2), math.ceil(level + width / 2)
            slider = self.slider_levels
            slider.setRange(min(lo, slider.minimum()), max(hi, slider.maximum()))
            slider.setValue((lo, hi))
        self._show_levels(self.slider_levels.value())

    @Slot(object)
    def _show_levels(self, value) -> None:
        lo, hi = (float(v) for v in value)
        self._levels_by_unit[self._level_unit] = tuple(int(v) for v in value)
        self.image_item.setLevels((lo, hi))
        if self._level_unit is None:
            self.label_levels.setText(f"{int(lo)}–{int(hi)}")
        else:
            self.label_levels.setText(f"W {hi - lo:.0f} L {(lo + hi) / 2:.0f} {self._level_unit}".rstrip())
        self.combo_preset.setCurrentText(self._active_preset(lo, hi))

    def _active_preset(self, lo: float, hi: float) -> str:
        """The preset the levels are at, "Custom" for others, the hint outside HU."""
        if self._level_unit != "HU":
            return PRESET_HINT
        for name, (width, level) in WINDOW_PRESETS.items():
            if (math.floor(level - width / 2), math.ceil(level + width / 2)) == (round(lo), round(hi)):
                return name
        return CUSTOM
