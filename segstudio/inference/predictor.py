"""Predictor: a trained model's backend (model/backends.py) and its plan, predicting masks at the
images' original size."""

from __future__ import annotations

import io
import json
import queue
import re
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data import Problem, list_image_files
from ..data.reader import frame_name
from ..preprocess.plan import Plan
from ..preprocess.recipe import image_input
from ..preprocess.windowing import parse_window
from ..errors import Cancelled, DataError
from ..io.dicom_seg import write as write_dicom_seg
from ..io.dicom_series import group_series, is_series_folder
from ..io.registry import hu_frames, read_image
from ..files import check_writable
from ..model.backends import Backend, TorchBackend, load_backend
from ..palette import colourise
from .fit import FitNotes, refuse_2d_images
from .outputs import PredictionFolder, check_output_folder, probabilities_npz
from .sliding_window import Tiled, gaussian_weights, stitch
from .uncertainty import entropy_map, score, to_uint8, with_flip, with_temperature
from .volumes import images_to_predict, predict_volume_folder, scan_layout


# Windows per forward pass (a whole image resized to the training size is one window): batches
# fill a GPU; on 2 CPU cores a batch of 8 ran at 0.86x one image at a time
# (tests/benchmarks/bench_predict.py), so the CPU takes one.
BATCH = {"cuda": 8}
PREFETCH = 16   # frames read ahead (in a thread) while the model runs


def prefetched(items, depth: int):
    """Iterate `items` in a background thread, `depth` ahead: reading and decoding files
    overlap the forward passes. Exceptions (Cancelled included) reach the consumer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def fill():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=fill, name="segstudio-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


@dataclass
class PredictReport:
    out_dir: str = ""
    written: list[str] = field(default_factory=list)  # class-index masks
    sources: list[tuple[str, int]] = field(default_factory=list)  # (image file, frame) per mask
    problems: list[Problem] = field(default_factory=list)  # images that got no mask
    dicom_segs: list[str] = field(default_factory=list)  # one DICOM SEG file per DICOM series
    left_alone: list[Problem] = field(default_factory=list)  # existing files not replaced
    tables: list[str] = field(default_factory=list)  # volumes.csv: millilitres per structure
    notes: list[Problem] = field(default_factory=list)  # masks written, with something to say
    mismatches: list[Problem] = field(default_factory=list)  # data the model may not fit (fit.FitNotes)
    seg_failures: list[Problem] = field(default_factory=list)  # masks written without their DICOM SEG
    images_dir: str = ""  # the folder predicted (a Decathlon root's imagesTs)
    uncertainty: dict[str, float] = field(default_factory=dict)  # mask written -> mean entropy


class Predictor:
    """A trained model (its backend) plus the preprocessing it was trained with."""

    def __init__(self, engine: Backend, training_folders: tuple[str, str] = ("", "")):
        self.engine = engine  # runs the model: PyTorch (a run, a fold set) or onnxruntime
        self.meta, self.device = engine.meta, engine.device
        self.plan = Plan.from_meta(self.meta)  # how images become the model's input (preprocess/recipe.py)
        self.batch_size = BATCH.get(self.device.type, 1)
        # mirrored test-time augmentation in predict_folder: each image averaged with its mirror
        # image's (twice the forward passes; +0.002..+0.047 held-out Dice in bench_recipe.py)
        self.tta = False
        self.training_folders = training_folders  # (images, masks) the run was trained on
        self._weights: torch.Tensor | None = None  # the sliding window's importance map

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto", allow_missing_folds: bool = False) -> "Predictor":
        """Load the model of the run in `run_dir` (or an ONNX file `segstudio export` wrote, run
        with onnxruntime, without fastai; or a fold set, its folds' probabilities averaged);
        SegstudioError if it has none."""
        engine = load_backend(run_dir, device, allow_missing_folds)
        return cls(engine, training_folders(engine.run_dir))

    @property
    def backend(self) -> str:
        """"torch" or "onnx": what runs the model."""
        return self.engine.name

    @property
    def model(self) -> torch.nn.Module | None:
        """The PyTorch model (None: an ONNX one)."""
        return self.engine.model if isinstance(self.engine, TorchBackend) else None

    @property
    def codes(self) -> list[str]:
        return list(self.meta["codes"])

    @property
    def window(self) -> str:
        return self.plan.window

    @property
    def size(self) -> int:
        return self.plan.size

    @property
    def temperature(self) -> float:
        """The calibration temperature fitted on the run's validation cases after training
        (model.json's "temperature"; 1 when it has none)."""
        return float(self.meta.get("temperature") or 1.0)

    def calibrated(self, probs):
        """(..., K, H, W) probabilities with the run's temperature applied (uncertainty.with_temperature):
        for uncertainty and exported probabilities; masks come from the probabilities as predicted."""
        return with_temperature(probs, self.temperature)

    @property
    def patches(self) -> dict | None:
        """A run trained on S x S patches of scaled images (patch, scale, overlap), predicted
        with a sliding window at that scale; None: whole images resized to S x S."""
        return self.plan.patches

    @torch.no_grad()
    def probabilities_resized(self, batch: np.ndarray, flip: bool = False) -> torch.Tensor:
        """(N, C, S, S) uint8 at training size -> (N, K, S, S) class probabilities (on device);
        `flip`: averaged with the mirrored image's (see uncertainty.with_flip)."""
        x = torch.from_numpy(np.array(batch, dtype=np.uint8, copy=True)).to(self.device).float().div_(255)
        if x.shape[1] == 1 and self.plan.n_in == 3:  # grey, repeated as in training
            x = x.repeat(1, 3, 1, 1)
        fn = self.engine.probabilities
        return with_flip(fn, x) if flip else fn(x)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """(C, h, w) uint8 the model's windows are cut from, for an (H, W) or (H, W, 3) uint8
        image or an int16 CT frame in HU: the plan's recipe (recipe.image_input), as training:
        resized to S x S (a patch run: scaled by its scale), then CT windowed."""
        return image_input(image, self.plan)

    def stream(self, entries: Iterable[tuple[Any, tuple[int, int], np.ndarray]], flip: bool = False,
               batch: int | None = None) -> Iterator[tuple[Any, torch.Tensor]]:
        """(payload, (H, W), prepared input) -> (payload, (K, H, W) probabilities on the device at
        that size), in order: the one batched path of both modes, `batch` (default batch_size)
        windows per forward pass, across images; `flip`: averaged with the mirrored windows'."""
        fn = partial(with_flip, self.engine.probabilities) if flip else self.engine.probabilities
        tiles = (((payload, shape), self._tiled(x)) for payload, shape, x in entries)
        for (payload, shape), probs in stitch(tiles, fn, batch or self.batch_size):
            if probs.shape[-2:] != shape:
                probs = F.interpolate(probs[None], size=shape, mode="bilinear", align_corners=False)[0]
            yield payload, probs

    def _tiled(self, x: np.ndarray) -> Tiled:
        t = torch.from_numpy(np.array(x, dtype=np.uint8, copy=True)).to(self.device).float().div_(255)
        if t.shape[0] == 1 and self.plan.n_in == 3:  # grey, repeated as in training
            t = t.repeat(3, 1, 1)
        patches = self.patches
        if patches is None:
            return Tiled.whole(t)
        size = patches["patch"]
        if self._weights is None or self._weights.shape[-1] != size:
            self._weights = gaussian_weights(size, device=self.device)
        return Tiled(t, size, patches["overlap"], self._weights)

    def probabilities(self, image: np.ndarray, flip: bool = False) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8 (or int16 HU) -> (K, H, W) float32 probabilities at the
        original size (`flip`: averaged with the mirrored image's)."""
        (_, probs), = self.stream([(None, image.shape[:2], self.prepare(image))], flip)
        return probs.cpu().numpy()

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W) or (H, W, 3) uint8 -> (H, W) uint8 class indices at the original size."""
        return self.probabilities(image).argmax(axis=0).astype(np.uint8)

    def predict_folder(self, images_dir: str | Path, out_dir: str | Path,
                       progress: Callable[[int, int, str], None] | None = None,
                       should_stop: Callable[[], bool] | None = None,
                       save_probabilities: bool = False, dicom_seg: bool = False,
                       protected: tuple[tuple[str, str], ...] = (), nifti: bool = False,
                       uncertainty: bool = False) -> PredictReport:
        """Write <name>.png (class indices) and <name>_color.png for every image (<name>: the
        image's own name, see safe_name); bad files are reported. With `dicom_seg`, also one
        <first slice>_seg.dcm per DICOM series. 3-D scans get a label volume each
        (inference/volumes.py; `nifti`: a NIfTI beside a DICOM series' SEG); a Decathlon / nnU-Net
        root gets its test scans (imagesTs) predicted. `progress(done, total, name)` is called as
        each image (or scan) is predicted.

        Checked before anything is predicted: `out_dir` may not be the images folder, the run's
        training folders or a `protected` ((label, folder) pairs) one, and must be writable; a
        model of 3-D scans is not applied to 2-D images (fit.py: other mismatches become notes).
        No file segstudio did not write is replaced (see outputs.PredictionFolder); such files
        are listed in `left_alone`. `uncertainty`: predictions averaged with the mirrored
        image's, an <name>_uncertainty.png entropy map each, and uncertainty.csv ranking the
        images most uncertain first. `save_probabilities`: <name>.npz with the class probabilities
        of each image or scan (outputs.probabilities_npz; a fold set's averaged)."""
        given = Path(images_dir)
        if not given.is_dir():
            raise DataError(f"{given} is a file, not a folder of images" if given.exists()
                            else f"Image folder not found: {given}")
        images_dir, why = images_to_predict(given)
        out = check_output_folder(out_dir, (("images", given), ("images", images_dir),
                                            ("training images", self.training_folders[0]),
                                            ("training masks", self.training_folders[1]),
                                            *protected))
        check_writable(out)
        layout = scan_layout(images_dir)
        if layout is None:
            refuse_2d_images(self.meta, images_dir, is_series_folder(images_dir))
        folder = PredictionFolder(out)
        report = PredictReport(out_dir=str(out), images_dir=str(images_dir))
        if why:
            report.notes.append(Problem(given.name, why))
        fit = FitNotes(self.meta)
        try:
            if layout is not None:
                predict_volume_folder(self, layout, folder, report, progress, should_stop, nifti, fit,
                                      save_probabilities)
            else:
                self._predict_images(images_dir, folder, report, progress, should_stop, fit,
                                     save_probabilities, dicom_seg, uncertainty)
        finally:
            folder.save()
            report.left_alone = [Problem(name, why) for name, why in folder.left_alone]
            report.problems += [Problem(item, why) for item, why in folder.skipped]
            report.mismatches += fit.notes()
        return report

    def _predict_images(self, images_dir: Path, folder: PredictionFolder, report: PredictReport, progress,
                        should_stop, fit: FitNotes, save_probabilities: bool, dicom_seg: bool,
                        uncertainty: bool) -> None:
        """predict_folder for a folder of 2-D images."""
        files = list_image_files(images_dir)
        masks: dict[Path, list[np.ndarray]] = {}
        current = None
        frames = prefetched(self._frames(files, report, should_stop, fit), PREFETCH)
        for (path, f, name, i), probs in self.stream(frames, flip=uncertainty or self.tta):
            if progress and i != current:
                current = i
                progress(i, len(files), path.name)
            # the argmax on the device: only the uint8 mask crosses to the host, unless the
            # probabilities themselves are written
            soft = probs.cpu().numpy() if save_probabilities or uncertainty else None
            mask = self._write_one(probs.argmax(dim=0).to(torch.uint8).cpu().numpy(), soft, name, (path, f),
                                   folder, report, save_probabilities, uncertainty)
            if dicom_seg:  # None (a frame whose mask was left alone): no SEG for the file
                masks.setdefault(path, []).append(mask)
        if masks:
            self._write_dicom_segs(masks, folder, report)
        if uncertainty:
            ranked = sorted(report.uncertainty.items(), key=lambda kv: -kv[1])
            folder.write("uncertainty.csv", "rank,mask,mean_entropy\n".encode() + b"".join(
                f"{k},{Path(m).name},{u:.6f}\n".encode() for k, (m, u) in enumerate(ranked, 1)), "")
        if progress:
            progress(len(files), len(files), "done")

    def _frames(self, files: list[Path], report: PredictReport, should_stop, fit: FitNotes):
        """((path, frame, name, file index), image size, prepared input) for every frame of
        `files`, read in order (in the prefetch thread); unreadable files go to the report."""
        window = parse_window(self.window)
        for i, path in enumerate(files):
            if should_stop and should_stop():
                raise Cancelled()
            try:  # CT in HU when the run's window is a W/L: resized, then windowed
                image = read_image(path, window, defer_ct=isinstance(window, tuple))
            except DataError as exc:
                report.problems.append(Problem(path.name, str(exc)))
                continue
            fit.image(path.name, hu_frames(image), image.modality, image.channels > 1)
            frames = image.frames
            n = len(frames)
            for f, frame in enumerate(frames):
                yield (path, f, frame_name(path, f, n), i), frame.shape[:2], self.prepare(frame)

    def _write_one(self, mask: np.ndarray, probs: np.ndarray | None, name: str, source: tuple[Path, int],
                   folder: PredictionFolder, report: PredictReport, save_probabilities: bool,
                   uncertainty: bool = False) -> np.ndarray | None:
        """Write `mask` ((H, W) class indices) and its pictures; `probs` ((K, H, W), needed only
        for the uncertainty and saved probabilities)."""
        stem, item = safe_name(name), source[0].name
        if not folder.write(f"{stem}.png", png_bytes(mask), item):
            return None  # the image's mask file is the user's: nothing else is written for it
        report.written.append(str(folder.out_dir / f"{stem}.png"))
        report.sources.append((str(source[0]), source[1]))
        folder.write(f"{stem}_color.png", png_bytes(colourise(mask, len(self.codes))), item)
        if uncertainty or save_probabilities:
            probs = self.calibrated(probs)  # the mask above is the model's own
        if uncertainty:
            entropy = entropy_map(probs)
            report.uncertainty[report.written[-1]] = score(entropy)
            folder.write(f"{stem}_uncertainty.png", png_bytes(to_uint8(entropy)), item)
        if save_probabilities:
            folder.write(f"{stem}.npz", probabilities_npz(probs), item)
        return mask

    def _write_dicom_segs(self, masks: dict[Path, list[np.ndarray]], folder: PredictionFolder,
                          report: PredictReport) -> None:
        def write(paths: list[Path]) -> DataError | None:
            name = f"{safe_name(paths[0].stem)}_seg.dcm"
            buf = io.BytesIO()
            try:
                write_dicom_seg(paths, [m for p in paths for m in masks[p]], self.codes, buf)
            except DataError as exc:
                return exc
            if folder.write(name, buf.getvalue(), paths[0].name):
                report.dicom_segs.append(str(folder.out_dir / name))
            return None

        def note(path: Path, error: DataError) -> None:
            report.seg_failures.append(Problem(path.name, f"mask written, but no DICOM SEG: {error}"))

        kept = {p for p, frames in masks.items() if any(m is None for m in frames)}
        for series in group_series(list(masks)):
            if kept.intersection(series):  # a partial SEG would contradict the mask left alone
                report.seg_failures.append(Problem(series[0].name, "no DICOM SEG for this series: a mask "
                                                                   "file of it was left alone"))
                continue
            error = write(series)
            if error and len(series) > 1:  # e.g. slices without patient coordinates: one SEG each
                for path in series:
                    if (error := write([path])):
                        note(path, error)
            elif error:
                note(series[0], error)


def training_folders(run_dir: Path | None) -> tuple[str, str]:
    """(images, masks) folders a run was trained on, from its config.json ("" when unknown)."""
    if run_dir is None:
        return "", ""
    try:
        data = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("data", {})
        return str(data.get("images", "") or ""), str(data.get("masks", "") or "")
    except (OSError, ValueError, AttributeError):
        return "", ""


def png_bytes(arr: np.ndarray) -> bytes:
    """PNG at zlib level 1: 2.5x faster than the default 6 on a 512 px mask (1.9 vs 4.8 ms),
    files a few kB larger; encoding was the largest host cost of predicting on a GPU."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# what a file name cannot hold on Windows, macOS or Linux: path separators, control characters
# and Windows' reserved punctuation
NOT_IN_FILE_NAMES = re.compile(r'[\x00-\x1f<>:"/\\|?*]')


def safe_name(name: str) -> str:
    """An item's name as an output file name: the user's own name ("slide 00", "gewebe-ä",
    "scan#3" for a frame), only characters no file name may hold replaced by "_", and Windows'
    trailing spaces and dots dropped."""
    return NOT_IN_FILE_NAMES.sub("_", name).rstrip(" .") or "image"
