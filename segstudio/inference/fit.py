"""Whether a model fits the data it is asked to predict: a refusal, before anything is predicted,
for what cannot be right (a model of 3-D scans on 2-D images), and notes for what may not be
(a CT model on other images, colour against grey)."""

from __future__ import annotations

from pathlib import Path

from ..data.report import Problem
from ..preprocess.windowing import parse_window
from ..errors import SegstudioError


def needs_scans(meta: dict) -> str:
    """Why the model can only predict 3-D scans ("" when 2-D images fit it): it was trained on
    slices with their neighbours (2.5-D), or on scans of several channels."""
    settings = meta.get("volumes") or {}
    context, channels = int(settings.get("context", 0)), int(settings.get("channels", 1))
    if context:
        return (f"2.5-D slices of 3-D scans (each slice with {context} neighbouring slice(s) on each side "
                "as input channels)")
    if channels > 1:
        return f"3-D scans of {channels} channels"
    return ""


def refuse_2d_images(meta: dict, images_dir: Path, dicom: bool) -> None:
    """SegstudioError when the model needs scans and `images_dir` holds 2-D images (`dicom`:
    DICOM slices among them, which become a scan in a folder of their own)."""
    trained = needs_scans(meta)
    if not trained:
        return
    hint = (" DICOM slices make a scan when each series is in a folder of its own: put them in a "
            "subfolder and predict the folder above it." if dicom else "")
    raise SegstudioError(f"This model was trained on {trained}; {images_dir} holds 2-D images, which it "
                         f"cannot predict: nothing was written. Predict a folder of 3-D scans (NIfTI, NRRD, "
                         f"MetaImage, or DICOM series folders).{hint}")


def hu_window(meta: dict) -> str:
    """The run's CT window as "W/L" when it was trained on CT in Hounsfield units, else ""."""
    window = parse_window(meta.get("window", "auto"))
    return f"{window[0]:g}/{window[1]:g}" if isinstance(window, tuple) else ""


class FitNotes:
    """What was seen while predicting that the model may not fit, one note per kind of mismatch
    (the first file named, with how many others)."""

    def __init__(self, meta: dict):
        self.window = hu_window(meta)
        self.channels = meta.get("channels")  # 1 (grey) or 3 (colour) when the run recorded it
        self.scans_model = "volumes" in meta
        self._seen: dict[str, list[str]] = {}

    def image(self, name: str, ct: bool, kind: str, colour: bool) -> None:
        """A 2-D image read for prediction: `ct` in HU, `kind` its modality or format, `colour` RGB."""
        if self.window and not ct:
            self._add(f"the model was trained on CT in Hounsfield units (window {self.window}); these "
                      f"images are not CT in HU ({kind or 'not DICOM'}) and were scaled by their own "
                      "values: check the masks", name)
        if self.channels == 1 and colour:
            self._add("the model was trained on grey images; these are colour images: check the masks", name)
        elif self.channels == 3 and not colour:
            self._add("the model was trained on colour images; these are grey (given as equal red, green "
                      "and blue): check the masks", name)

    def scan(self, name: str, looks_ct: bool, windowed: bool, modality: str) -> None:
        """A 3-D scan read for prediction: `looks_ct` by its own file or values, `windowed` with
        the run's HU window (a run of CT scans takes every scan as CT)."""
        if self.window and not looks_ct:
            how = "windowed as CT all the same" if windowed else "scaled by their own percentiles"
            self._add(f"the model was trained on CT in Hounsfield units (window {self.window}); these scans do "
                      f"not look like CT ({modality or 'no air near -1000 HU'}) and were {how}: check the masks",
                      name)
        if not self.scans_model:
            self._add("the model was trained on 2-D images, not on 3-D scans; these scans were predicted as "
                      "axial slices: check the masks", name)

    def _add(self, why: str, name: str) -> None:
        self._seen.setdefault(why, []).append(name)

    def notes(self) -> list[Problem]:
        return [Problem(names[0] + (f" and {len(names) - 1} more" if len(names) > 1 else ""), why)
                for why, names in self._seen.items()]
