"""The one image type: a `Volume` (a scan, or a 2-D file's frames as slices), its geometry and
the canonical orientation every reader returns.

Conventions:
- `Volume.array` is in numpy order (Z, Y, X); an image with several channels is (C, Z, Y, X).
  A 2-D file is a volume of one slice per frame, 1 mm voxels at the origin.
- Canonical orientation: Z runs inferior->superior, Y anterior->posterior, X right->left, so
  `array[z]` is an axial slice as radiologists view it (anterior up, the patient's right on the
  left), laid out like an axial DICOM series. nibabel's axis codes of the array axes are "SPL";
  of (x, y, z) they are "LPS", the DICOM / ITK convention.
- `Volume.affine` maps array indices in array order, (z, y, x, 1), to RAS+ world millimetres
  (the NIfTI / nibabel world). `spacing` is the voxel size in mm in array order (dz, dy, dx).
- Canonicalising only permutes and flips axes (exact); nothing is resampled, so an oblique
  volume stays oblique. `Volume.native` keeps the file's own geometry for writing labels back.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from ..errors import DataError

MAX_CHANNELS = 4  # a longer 4th axis is a time series, not channels
CANONICAL = axcodes2ornt(("S", "P", "L"))  # array axes (Z, Y, X)
# 1 mm voxels in the canonical directions: array index (z, y, x) lies at RAS (-x, -y, z) mm
CANONICAL_AXES = np.array([[0, 0, -1, 0], [0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # ITK world (LPS) <-> nibabel world (RAS); its own inverse


@dataclass(frozen=True)
class Native:
    """How the file stores the volume, to write results back in the same geometry."""
    affine: np.ndarray              # the file's voxel indices (i, j, k) -> RAS+ mm
    shape: tuple[int, int, int]     # the file's (i, j, k) sizes
    header: nib.Nifti1Header | None = None  # NIfTI-1/2 header; None for NRRD / MetaImage


@dataclass
class Volume:
    array: np.ndarray               # (Z, Y, X), or (C, Z, Y, X) for a multi-channel image
    affine: np.ndarray              # 4x4 float64: array indices (z, y, x, 1) -> RAS+ mm
    spacing: tuple[float, float, float]  # mm, in array order (dz, dy, dx)
    source: list[str] = field(default_factory=list)  # the files read (header and data file)
    format: str = ""                # "nifti", "nrrd", "mha", "mhd", "dicom", "dicom-seg"; a 2-D
                                    # file's "png", "jpeg", "tiff", "bmp", "dicom"; "" when made here
    orientation: str = ""           # axis codes of the file's (i, j, k), as stored: "RAS", "LPS"...
    modality: str = ""              # "CT", "MR" when the file says (NIfTI never does)
    native: Native | None = None
    group: str = ""                 # a DICOM file's "patient-<hash of PatientID>", else ""
    window: str = ""                # how a grey 2-D DICOM file was windowed (see dicom_file.read_dicom)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The spatial (Z, Y, X) size."""
        return tuple(self.array.shape[-3:])

    @property
    def channels(self) -> int:
        return self.array.shape[0] if self.array.ndim == 4 else 1

    @property
    def frames(self) -> list[np.ndarray]:
        """The axial slices as 2-D images, (Y, X) or (Y, X, C): a 2-D file's frames."""
        if self.array.ndim == 3:
            return list(self.array)
        return [np.ascontiguousarray(np.moveaxis(self.array[:, z], 0, -1)) for z in range(self.array.shape[1])]

    @classmethod
    def from_2d(cls, array: np.ndarray) -> Volume:
        """A 2-D image (H, W) or (H, W, C) as one axial slice, (1, H, W) or (C, 1, H, W), with
        1 mm voxels at the origin in the canonical directions."""
        return cls.from_frames([array])

    @classmethod
    def from_frames(cls, frames: list[np.ndarray], **fields) -> Volume:
        """2-D frames of one size, each (H, W) or (H, W, C), as the slices of one volume, (Z, H, W)
        or (C, Z, H, W), with 1 mm voxels at the origin in the canonical directions. Among
        colour frames, a grey one gets its value in every channel. `fields`: Volume's others."""
        frames = [np.asarray(f) for f in frames]
        if not frames:
            raise DataError("no image frames in the file")
        channels = max(f.shape[2] if f.ndim == 3 else 1 for f in frames)
        if channels == 1 and all(f.ndim == 2 for f in frames):
            array = np.stack(frames)
        else:
            colour = [f if f.ndim == 3 else np.repeat(f[..., None], channels, -1) for f in frames]
            array = np.moveaxis(np.stack(colour), -1, 0)
        return cls(np.ascontiguousarray(array), CANONICAL_AXES.copy(), (1.0, 1.0, 1.0), **fields)


def orientation_code(affine: np.ndarray) -> str:
    """nibabel's axis codes of an affine's voxel axes, in column order: "RAS", "LPS", "SPL"..."""
    return "".join(nib.aff2axcodes(affine))


def canonical_volume(data: np.ndarray, affine: np.ndarray, header, modality: str, source: list[str],
                     fmt: str, mask: bool) -> Volume:
    """A Volume in the canonical orientation from data in a file's (i, j, k[, c]) order and its
    voxel-to-RAS affine: images as float32 checked for NaN, masks (`mask=True`) as their exact
    integer labels."""
    data = _spatial_first(data, mask)
    data = _labels(data) if mask else _checked_image(data)
    ornt = io_orientation(affine)
    if np.isnan(ornt).any():
        raise DataError("the voxel-to-world matrix is singular (a voxel size of 0?)")
    to_canonical = ornt_transform(ornt, CANONICAL)
    array = apply_orientation(data, to_canonical)  # spatial axes only; channels stay last
    if array.ndim == 4:
        array = np.moveaxis(array, 3, 0)
    canonical = affine @ inv_ornt_aff(to_canonical, data.shape[:3])
    spacing = tuple(float(s) for s in np.linalg.norm(canonical[:3, :3], axis=0))
    return Volume(np.ascontiguousarray(array), canonical, spacing, source, fmt,
                  orientation_code(affine), modality, Native(affine, data.shape[:3], header))


def header_volume(shape: tuple[int, ...], affine: np.ndarray, source: list[str], fmt: str) -> Volume:
    """A file's canonical shape and affine from its header's (i, j, k[, c]) `shape` and voxel-to-RAS
    `affine`, without voxels: the array is a zero-sized-memory placeholder of the right shape."""
    spatial = tuple(shape[:3]) + (1,) * (3 - len(shape[:3]))
    extra = [n for n in shape[3:] if n != 1]
    if len(extra) > 1 or (extra and extra[0] > MAX_CHANNELS):
        raise DataError(f"4-D image with {extra[0]} volumes (a time series?); expected a 3-D volume "
                        f"or up to {MAX_CHANNELS} channels")
    ornt = io_orientation(affine)
    if np.isnan(ornt).any():
        raise DataError("the voxel-to-world matrix is singular (a voxel size of 0?)")
    to_canonical = ornt_transform(ornt, CANONICAL)
    canonical_shape = tuple(int(spatial[int(i)]) for i in np.argsort(to_canonical[:, 0]))
    canonical = affine @ inv_ornt_aff(to_canonical, spatial)
    placeholder = np.broadcast_to(np.float32(0), tuple(extra) + canonical_shape)
    spacing = tuple(float(s) for s in np.linalg.norm(canonical[:3, :3], axis=0))
    return Volume(placeholder, canonical, spacing, source, fmt, orientation_code(affine))


def check_same_geometry(image: Volume, label: Volume, tol: float = 1e-3, *,
                        what: str = "label") -> str | None:
    """None when both volumes cover the same voxels (canonical shapes equal and no corner voxel
    placed more than `tol` mm apart), else a one-line reason. Nothing is resampled."""
    if image.shape != label.shape:
        return f"{what} is {_size(label.shape)} but image is {_size(image.shape)}"
    corners = np.array([[*c, 1.0] for c in itertools.product(*((0, n - 1) for n in image.shape))]).T
    moved = float(np.linalg.norm(((label.affine - image.affine) @ corners)[:3], axis=0).max())
    if moved > tol:
        return f"{what} affine differs from the image's by {moved:.3g} mm"
    return None


def to_native(labels_canonical: np.ndarray, like: Volume) -> np.ndarray:
    """A canonical (Z, Y, X) label map in the voxel order of the file(s) `like` was read from,
    (i, j, k)."""
    to_native = ornt_transform(CANONICAL, io_orientation(like.native.affine))
    return apply_orientation(np.asarray(labels_canonical), to_native)


def native_labels(labels_canonical: np.ndarray, like: Volume) -> np.ndarray:
    """A canonical (Z, Y, X) label map as a writer stores it: in `like`'s file voxel order, as
    uint8 or uint16; ValueError when it does not fit `like` or is not labels 0..65535."""
    if like.native is None:
        raise ValueError("the volume was not read from a file: no geometry to write")
    labels = np.asarray(labels_canonical)
    if labels.shape != like.shape:
        raise ValueError(f"labels are {_size(labels.shape)} but the volume is {_size(like.shape)}")
    return np.ascontiguousarray(to_native(labels, like).astype(_label_dtype(labels)))


def _spatial_first(data: np.ndarray, mask: bool) -> np.ndarray:
    """(i, j, k) or (i, j, k, c): a 2-D slice gets k = 1, unit axes past the third are dropped,
    a 4th axis is channels when short (images only); anything else is refused."""
    if data.ndim == 2:
        data = data[..., None]
    extra = [n for n in data.shape[3:] if n != 1]
    data = data.reshape(data.shape[:3] + tuple(extra))
    if data.ndim == 3:
        return data
    if data.ndim > 4:
        raise DataError(f"{data.ndim}-D data; expected a 3-D volume")
    n = data.shape[3]
    if mask:
        raise DataError(f"label file holds {n} volumes (4-D); expected one 3-D label map")
    if n > MAX_CHANNELS:
        raise DataError(f"4-D image with {n} volumes (a time series?); expected a 3-D volume "
                        f"or up to {MAX_CHANNELS} channels")
    return data


def _checked_image(data: np.ndarray) -> np.ndarray:
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise DataError(f"{bad} voxel(s) are NaN or infinite")
    return data


def _labels(data: np.ndarray) -> np.ndarray:
    """Label values as integers: integer data as stored, integral floats in the smallest dtype."""
    if data.dtype.kind in "iu":
        return data
    if data.dtype.kind == "b":
        return data.astype(np.uint8)
    if data.dtype.kind != "f":
        raise DataError(f"label voxels are {data.dtype} values, not integers")
    off = data[data != np.round(data)]  # NaN is never equal to itself, so it is caught here
    if off.size:
        raise DataError(f"label values are not integers (e.g. {off.flat[0]:g})")
    lo, hi = int(data.min()), int(data.max())
    return data.astype(np.promote_types(np.min_scalar_type(lo), np.min_scalar_type(hi)))


def _label_dtype(labels: np.ndarray) -> type:
    if labels.size and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max
                        or np.any(labels != np.round(labels))):
        raise ValueError("labels must be integers from 0 to 65535")
    return np.uint8 if not labels.size or labels.max() <= 255 else np.uint16


def _size(shape: tuple[int, ...]) -> str:
    """A (Z, Y, X) size as viewers show it, x by y by z: "64x64x30"."""
    return "x".join(str(n) for n in reversed(shape))
