"""Tiny images, masks and DICOM files written on the fly (the `mk` fixture hands them to tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_dicom(path: Path, pixels: np.ndarray, *, patient_id: str | None = None,
                slope: float | None = None, intercept: float | None = None,
                window: tuple[float, float] | None = None, photometric: str = "MONOCHROME2",
                multiframe: bool = False, **attrs) -> Path:
    """A minimal uncompressed DICOM file: (H, W), (F, H, W) with multiframe=True, or (H, W, 3);
    `attrs` are further elements by keyword."""
    pixels = np.ascontiguousarray(pixels)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    if patient_id is not None:
        ds.PatientID = patient_id
        ds.PatientName = "Doe^Jane"
    colour = pixels.ndim == 3 and not multiframe
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    if multiframe:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = "RGB" if colour else photometric
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept or 0
    if window is not None:
        ds.WindowWidth, ds.WindowCenter = window
    ds.PixelData = pixels.tobytes()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(folder: Path, n: int = 4, h: int = 16, w: int = 16, patient_id: str = "PAT-7",
                 names: list[str] | None = None) -> list[Path]:
    """A CT series of `n` slices on an oblique plane, slice k at k mm along the normal, written
    under `names` (default: names that sort against the slice order). Returns paths by slice."""
    row, col = np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.8, -0.6])
    normal = np.cross(row, col)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    names = names or [f"s{(7 * k + 3) % n:02d}_{k}.dcm" for k in range(n)]
    paths = []
    for k in range(n):
        pixels = (gradient(h, w).astype(np.int16) + 40 * k)
        paths.append(write_dicom(
            folder / names[k], pixels, patient_id=patient_id, window=(400, 40),
            StudyInstanceUID=study, SeriesInstanceUID=series, FrameOfReferenceUID=frame,
            ImageOrientationPatient=[*row, *col], ImagePositionPatient=list(normal * k + 5),
            PixelSpacing=[0.7, 0.7], SliceThickness=1.0, InstanceNumber=n - k,  # reversed
            SeriesNumber=1, StudyID="1", StudyDate="20240101", StudyTime="120000",
            AccessionNumber="", ReferringPhysicianName="", PatientBirthDate="", PatientSex="O"))
    return paths


def write_png(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(np.asarray(arr)).save(path, format="PNG")
    return path


def gradient(h: int = 16, w: int = 16) -> np.ndarray:
    """A uint8 test image with many grey levels."""
    return (np.arange(h * w).reshape(h, w) % 251).astype(np.uint8)


def square_mask(h: int = 16, w: int = 16, value: int = 255) -> np.ndarray:
    m = np.zeros((h, w), dtype=np.uint8)
    m[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = value
    return m
