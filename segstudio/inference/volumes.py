"""Predicting 3-D scans slice by slice (2-D or 2.5-D, as the run was trained), written back in
each scan's own geometry and format, with the volume of every structure in millilitres."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..data.layouts import Layout, detect_layout
from ..data.report import Problem
from ..preprocess.recipe import is_ct, scan_input, with_context
from ..preprocess.slicing import put_slice
from ..preprocess.windowing import parse_window
from ..errors import Cancelled, DataError
from ..io import dicom_seg
from ..io.registry import read_channels, read_scan, volume_suffix, write_label_like
from ..io.volume import Volume, to_native
from .fit import FitNotes
from .outputs import PredictionFolder, probabilities_npz

BATCH = 16
OUTPUT_SUFFIX = {".nii.gz": ".nii.gz", ".nii": ".nii.gz", ".nrrd": ".nrrd", ".nhdr": ".nrrd",
                 ".mha": ".mha", ".mhd": ".mha"}  # single files, written atomically
VOLUMES_CSV = "volumes.csv"


def predict_volume(predictor, volume: Volume, should_stop: Callable[[], bool] | None = None,
                   probabilities: np.ndarray | None = None,
                   on_slice: Callable[[int, torch.Tensor], None] | None = None) -> np.ndarray:
    """(Z, Y, X) uint8 class indices for a canonical `volume`: its slices across the run's axis,
    each with its neighbours in 2.5-D, as training fed them (recipe.scan_input). `probabilities`:
    a (K, Z, Y, X) array that receives the class probabilities too (calibrated, as exported).
    `on_slice(k, probs)`: called with each slice's index and its (K, H, W) probabilities as
    predicted, at the scan's size, on the model's device."""
    plan = predictor.plan
    axis = plan.slice_axis
    slices = scan_input(volume, plan)
    labels = np.zeros(volume.shape, np.uint8)
    n = len(slices)
    height, width = (d for i, d in enumerate(volume.shape) if i != axis)
    for start in range(0, n, BATCH):
        if should_stop and should_stop():
            raise Cancelled()
        ks = np.arange(start, min(start + BATCH, n))
        probs = predictor.probabilities_resized(with_context(slices, ks, plan.context), flip=predictor.tta)
        probs = F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
        for k, plane in zip(ks, probs.argmax(dim=1).to(torch.uint8).cpu().numpy()):
            put_slice(labels, axis, int(k), plane)
        if on_slice is not None:
            for k, p in zip(ks, probs):
                on_slice(int(k), p)
        if probabilities is not None:
            for k, planes in zip(ks, predictor.calibrated(probs).cpu().numpy()):
                for c, plane in enumerate(planes):
                    put_slice(probabilities[c], axis, int(k), plane)
    return labels


def _shown(case) -> str:
    """The case's image file as a user finds it: with its case folder when the file's name is the
    same in every case (KiTS: case_00003/imaging.nii.gz)."""
    path = case.images[0]
    return f"{path.parent.name}/{path.name}" if path.parent.name == case.name else path.name


def structure_volumes(labels: np.ndarray, spacing, codes: list[str]) -> list[tuple[str, int, float]]:
    """(class name, voxels, millilitres) of every foreground class."""
    counts = np.bincount(labels.ravel(), minlength=len(codes))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return [(codes[k], int(counts[k]), float(counts[k]) * voxel_ml) for k in range(1, len(codes))]


def images_to_predict(folder: Path) -> tuple[Path, str]:
    """The folder to predict when the user gives `folder`, and why when it is another: a
    Decathlon / nnU-Net root (imagesTr, labelsTr, imagesTs) has its test scans predicted, in
    imagesTs (nnU-Net's convention); without imagesTs, its training scans."""
    subdirs = {d.name.lower(): d for d in folder.iterdir() if d.is_dir()}
    if "imagestr" not in subdirs:
        return folder, ""
    if "imagests" in subdirs:
        test = subdirs["imagests"]
        return test, (f"a Decathlon / nnU-Net dataset: its test scans in {test.name}/ were predicted "
                      f"(nnU-Net's convention; give its {subdirs['imagestr'].name}/ folder for the training scans)")
    return folder, (f"a Decathlon / nnU-Net dataset without test scans (imagesTs/): its training scans in "
                    f"{subdirs['imagestr'].name}/ were predicted")


def scan_layout(images_dir: Path) -> Layout | None:
    """The 3-D layout of a folder to predict, or None when it holds 2-D images."""
    try:
        layout = detect_layout(images_dir)
    except (DataError, OSError):
        return None
    return layout if layout.cases else None


def predict_volume_folder(predictor, layout: Layout, folder: PredictionFolder, report,
                          progress: Callable | None, should_stop: Callable | None, nifti: bool = False,
                          fit: FitNotes | None = None, save_probabilities: bool = False) -> None:
    """Every scan of `layout` (a folder of scans, a Decathlon/KiTS layout, or DICOM series
    folders): a label file named after the case in the scan's own format and geometry (a DICOM
    SEG for a DICOM series, and with `nifti` a NIfTI too), and volumes.csv with the millilitres
    of each structure. `fit` (predict_folder's) collects notes on scans the model may not fit.
    `save_probabilities`: <case>.npz with the (K, Z, Y, X) class probabilities in the scan's own
    voxel order, as SimpleITK and nnU-Net read the scan (slices, rows, columns)."""
    report.problems += [Problem(p.name, reason) for p, reason in layout.problems]
    cases, rows = layout.cases, []
    plan = predictor.plan
    channels = plan.scan_channels
    hu = isinstance(parse_window(plan.window), tuple)
    for i, case in enumerate(cases):
        if should_stop and should_stop():
            raise Cancelled()
        if progress:
            progress(i, len(cases), case.name)
        try:
            volume = read_channels(case.images) if len(case.images) > 1 else read_scan(case.images[0])
        except DataError as exc:
            report.problems.append(Problem(_shown(case), str(exc)))
            continue
        if volume.channels != channels:
            report.problems.append(Problem(_shown(case), f"{volume.channels} channel(s); the "
                                           f"model was trained on scans of {channels}"))
            continue
        if fit is not None:
            fit.scan(_shown(case), is_ct(volume, []), hu and is_ct(volume, plan.modalities), volume.modality)
        probs = np.zeros((len(predictor.codes), *volume.shape), np.float16) if save_probabilities else None
        labels = predict_volume(predictor, volume, should_stop, probs)
        series = volume.format == "dicom"
        name = case.name + (".nii.gz" if series else OUTPUT_SUFFIX[volume_suffix(case.images[0])])
        if series:
            _write_seg(predictor, labels, volume, case.name, folder, report)
        if (not series or nifti) and folder.write_with(
                name, case.images[0].name, lambda path: write_label_like(labels, volume, path)):
            report.written.append(str(folder.out_dir / name))
            report.sources.append((str(case.images[0]), 0))
        if probs is not None:  # the file's (i, j, k) order, reversed to numpy's (k, j, i)
            native = np.stack([to_native(p, volume).T for p in probs])
            folder.write(f"{case.name}.npz", probabilities_npz(native), case.images[0].name)
        rows += [(case.name, *row) for row in structure_volumes(labels, volume.spacing, predictor.codes)]
    if progress:
        progress(len(cases), len(cases), "done")
    if rows:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["case", "class", "voxels", "ml"])
        writer.writerows([(c, k, n, f"{ml:.3f}") for c, k, n, ml in rows])
        folder.write(VOLUMES_CSV, buf.getvalue().encode("utf-8"), "the predicted scans")
        report.tables.append(str(folder.out_dir / VOLUMES_CSV))


def _write_seg(predictor, labels: np.ndarray, volume: Volume, name: str, folder: PredictionFolder,
               report) -> None:
    """A DICOM SEG of a DICOM series' predicted labels, referencing its slices."""
    native = to_native(labels, volume)  # (columns, rows, slices) in the series' file order
    masks = [np.ascontiguousarray(native[:, :, k].T).astype(np.uint8) for k in range(native.shape[2])]
    buf = io.BytesIO()
    try:
        dicom_seg.write([Path(p) for p in volume.source], masks, predictor.codes, buf)
    except DataError as exc:
        report.seg_failures.append(Problem(name, f"no DICOM SEG: {exc}"))
        return
    seg_name = f"{name}_seg.dcm"
    if folder.write(seg_name, buf.getvalue(), name):
        report.dicom_segs.append(str(folder.out_dir / seg_name))
