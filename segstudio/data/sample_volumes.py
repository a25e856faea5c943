"""The built-in volumetric sample: deterministic CT-like phantoms as NIfTI in a Decathlon layout.

Each case is a soft-tissue body in air with a "liver" (label 1, on the patient's right) and two
"kidneys" (label 2, posterior, lower down) as ellipsoids of varying position and size, a spine
(bone, not a class) and 15 HU noise; 64x64 voxels of 0.8 mm in-plane, 24-40 slices of 2.5 mm.
Images are stored as int16 HU in RAS voxel order; the labels of cases in REORIENTED are stored
with their axes permuted and flipped (the affine says so), so pairing them needs the geometry.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import platformdirs
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

from ..io.volume import CANONICAL, CANONICAL_AXES
from .sample import CLASSES, HU, NOISE_HU

VERSION = "sample-volumes-v1"
N_CASES = 6
SIZE = 64
SPACING = (2.5, 0.8, 0.8)  # mm, canonical array order (z, y, x)
IMAGE_AXES = ("R", "A", "S")
REORIENTED = {2: ("A", "L", "I"), 5: ("L", "P", "S")}  # case number -> the label file's axes
SEED = 0


def sample_volumes(root: str | Path | None = None) -> tuple[Path, Path]:
    """(imagesTr, labelsTr) of the sample under `root` (default: the user cache folder /
    VERSION), written once: built in a temporary folder, then renamed into place."""
    root = Path(root) if root is not None else (
        platformdirs.user_cache_path("segstudio", appauthor=False) / VERSION)
    if not (root / "dataset.json").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
        try:
            _write_dataset(tmp)
            if root.is_dir() and not any(root.iterdir()):
                root.rmdir()
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if not (root / "dataset.json").is_file():  # else another process just wrote it
                raise
    return root / "imagesTr", root / "labelsTr"


def _write_dataset(root: Path) -> None:
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(SEED)
    training = []
    for n in range(1, N_CASES + 1):
        name = f"case_{n:03d}"
        hu, labels = phantom_volume(rng, int(rng.integers(24, 41)))
        affine = CANONICAL_AXES @ np.diag([*SPACING, 1.0])
        affine[:3, 3] = rng.uniform(-30, 30, 3).round(1)  # voxel (0, 0, 0) in RAS mm
        _save(root / "imagesTr" / f"{name}_0000.nii.gz", np.round(hu).astype(np.int16), affine, IMAGE_AXES)
        _save(root / "labelsTr" / f"{name}.nii.gz", labels, affine, REORIENTED.get(n, IMAGE_AXES))
        training.append({"image": f"./imagesTr/{name}.nii.gz", "label": f"./labelsTr/{name}.nii.gz"})
    meta = {"name": "segstudio phantom", "description": "synthetic CT-like phantoms (segstudio sample)",
            "tensorImageSize": "3D", "modality": {"0": "CT"},
            "labels": {str(i): c for i, c in enumerate(CLASSES)},
            "numTraining": N_CASES, "numTest": 0, "training": training, "test": []}
    (root / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def phantom_volume(rng: np.random.Generator, slices: int) -> tuple[np.ndarray, np.ndarray]:
    """(HU float32, labels uint8), both (Z, Y, X) in the canonical orientation (X runs from the
    patient's right to left, Y from anterior to posterior, Z upwards)."""
    z = np.arange(slices, dtype=np.float32)[:, None, None] * SPACING[0]  # mm
    y = np.arange(SIZE, dtype=np.float32)[None, :, None] * SPACING[1]
    x = np.arange(SIZE, dtype=np.float32)[None, None, :] * SPACING[2]
    cy, cx = SIZE * SPACING[1] / 2 + rng.uniform(-2, 2, 2)
    height = slices * SPACING[0]
    body = _ellipsoid(z, y, x, (0, cy, cx), (np.inf, rng.uniform(13, 16), rng.uniform(18, 21)))
    liver = body & _ellipsoid(z, y, x, (height * rng.uniform(0.55, 0.7), cy - rng.uniform(0, 4),
                                        cx - rng.uniform(6, 9)),
                              (height * rng.uniform(0.2, 0.3), rng.uniform(6, 9), rng.uniform(7, 10)))
    kidneys = np.zeros_like(liver)
    for side in (-1, 1):
        kidneys |= _ellipsoid(z, y, x, (height * rng.uniform(0.3, 0.4), cy + rng.uniform(6, 8),
                                        cx + side * rng.uniform(9, 12)),
                              (height * rng.uniform(0.12, 0.18), rng.uniform(2.5, 3.5), rng.uniform(3, 4.5)))
    kidneys &= body & ~liver
    spine = _ellipsoid(z, y, x, (0, cy + 10, cx), (np.inf, 3, 3)) & ~liver & ~kidneys
    shape = (slices, SIZE, SIZE)
    hu = np.full(shape, HU["air"], dtype=np.float32)
    hu[body] = HU["body"]
    hu[liver] = HU["liver"] + rng.uniform(-10, 10)
    hu[kidneys] = HU["kidney"] + rng.uniform(-10, 10)
    hu[spine] = HU["bone"]
    hu += rng.normal(0.0, NOISE_HU, shape).astype(np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    labels[liver] = 1
    labels[kidneys] = 2
    return hu, labels


def _ellipsoid(z, y, x, centre, radii) -> np.ndarray:
    return sum(((c - c0) / r) ** 2 for c, c0, r in zip((z, y, x), centre, radii)) <= 1.0


def _save(path: Path, canonical: np.ndarray, affine: np.ndarray, axes: tuple[str, str, str]) -> None:
    """Store a canonical (Z, Y, X) array with its voxel axes along `axes` (nibabel codes)."""
    t = ornt_transform(CANONICAL, axcodes2ornt(axes))
    img = nib.Nifti1Image(apply_orientation(canonical, t), affine @ inv_ornt_aff(t, canonical.shape))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    nib.save(img, path)
