"""The built-in sample dataset: deterministic CT-like phantom slices (DICOM) with label masks (PNG).

Each slice has a soft-tissue body in air, a large "liver" (+80 HU) and usually a small "kidney"
(+160 HU) at random positions, sizes and rotations, a vertebra (+700 HU, not a class) and 15 HU
noise. In the files' own 40/400 window the classes are about 50 grey levels apart, so a tiny
U-Net separates them within a minute on a CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import platformdirs
import pydicom
from PIL import Image
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

VERSION = "sample-v3"
CLASSES = ("background", "liver", "kidney")
HU = {"air": -1000.0, "body": 0.0, "liver": 80.0, "kidney": 160.0, "bone": 700.0}
NOISE_HU = 15.0
INTERCEPT = -1024
MARKER = "COMPLETE"


def sample_dataset(root: str | Path | None = None, n: int = 40, size: int = 128,
                   n_patients: int = 6, seed: int = 0) -> tuple[Path, Path]:
    """(images_dir, masks_dir) of the sample dataset under `root`, written on first use.

    `root` None is the user cache folder / "sample-v1". A complete dataset written with the same
    parameters is reused; otherwise the phantom files are (re)written. Same parameters, same bytes.
    """
    root = Path(root) if root is not None else Path(platformdirs.user_cache_dir("segstudio")) / VERSION
    images, masks = root / "images", root / "masks"
    signature = f"{VERSION} n={n} size={size} patients={n_patients} seed={seed}\n"
    marker = root / MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8") == signature:
        return images, masks
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for old in [*images.glob("phantom_*.dcm"), *masks.glob("phantom_*.png")]:
        old.unlink()
    rng = np.random.default_rng(seed)
    first_slice: dict[int, int] = {}
    for i in range(n):
        patient = i * n_patients // n + 1
        first_slice.setdefault(patient, i)
        hu, label = phantom_slice(rng, size)
        stem = f"phantom_{patient:02d}_{i:03d}"
        _write_ct(images / f"{stem}.dcm", hu, patient, i, i - first_slice[patient], signature)
        Image.fromarray(label).save(masks / f"{stem}.png")
    (masks / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    marker.write_text(signature, encoding="utf-8")
    return images, masks


def phantom_slice(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(HU float32 (S, S), labels uint8 (S, S) with 0 background, 1 liver, 2 kidney)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size  # unit coordinates
    cy, cx = 0.5 + rng.uniform(-0.04, 0.04, 2)
    body = _ellipse(yy, xx, cy, cx, rng.uniform(0.30, 0.36), rng.uniform(0.40, 0.46),
                    rng.uniform(-0.15, 0.15))
    liver = body & _ellipse(yy, xx, cy + rng.uniform(-0.08, 0.02), cx - rng.uniform(0.10, 0.18),
                            rng.uniform(0.10, 0.15), rng.uniform(0.13, 0.19),
                            rng.uniform(0, np.pi))
    kidney = body & _ellipse(yy, xx, cy + rng.uniform(-0.02, 0.10), cx + rng.uniform(0.15, 0.24),
                             rng.uniform(0.05, 0.07), rng.uniform(0.06, 0.09),
                             rng.uniform(0, np.pi))
    if rng.random() < 0.15:  # some slices show no kidney
        kidney[:] = False
    bone = _ellipse(yy, xx, cy + 0.2, cx, 0.045, 0.045, 0.0) & ~liver & ~kidney
    hu = np.full((size, size), HU["air"], dtype=np.float32)
    hu[body] = HU["body"]
    hu[liver] = HU["liver"] + rng.uniform(-10, 10)
    hu[kidney] = HU["kidney"] + rng.uniform(-10, 10)
    hu[bone] = HU["bone"]
    hu += rng.normal(0.0, NOISE_HU, hu.shape).astype(np.float32)
    label = np.zeros((size, size), dtype=np.uint8)
    label[liver] = 1
    label[kidney] = 2
    return hu, label


def _ellipse(yy, xx, cy, cx, ry, rx, angle) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = (yy - cy) * c - (xx - cx) * s
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _write_ct(path: Path, hu: np.ndarray, patient: int, index: int, slice_no: int,
              signature: str) -> None:
    """One CT Image Storage file: int16 stored values, intercept -1024, window 40/400, axial
    slices 5 mm apart (so viewers and DICOM SEG writers can place them).
    UIDs are derived from `signature` so the same parameters give the same bytes."""
    def uid(kind: str, key: int) -> str:
        return generate_uid(entropy_srcs=[signature, kind, str(key)])

    stored = np.clip(np.round(hu - INTERCEPT), -32768, 32767).astype(np.int16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = uid("sop", index)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uid("study", patient)
    ds.SeriesInstanceUID = uid("series", patient)
    ds.FrameOfReferenceUID = uid("frame", patient)
    ds.Modality = "CT"
    ds.PatientName = "PHANTOM^SAMPLE"
    ds.PatientID = f"PHANTOM-{patient:02d}"
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", str(patient)
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.SeriesNumber = 1
    ds.PositionReferenceIndicator = ""
    ds.StudyDescription = "segstudio sample phantom (synthetic)"
    ds.InstanceNumber = index + 1
    ds.Rows, ds.Columns = hu.shape
    ds.PixelSpacing = [1.0, 1.0]
    ds.SliceThickness = 5.0
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-hu.shape[1] / 2, -hu.shape[0] / 2, 5.0 * slice_no]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = INTERCEPT, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
