"""3-D volumes from NIfTI (nibabel) and NRRD / MetaImage (SimpleITK), in one canonical orientation.

Conventions:
- `Volume.array` is in numpy order (Z, Y, X); an image with several channels is (C, Z, Y, X).
- Canonical orientation: Z runs inferior->superior, Y anterior->posterior, X right->left, so
  `array[z]` is an axial slice as radiologists view it (anterior up, the patient's right on the
  left), laid out like an axial DICOM series. nibabel's axis codes of the array axes are "SPL";
  of (x, y, z) they are "LPS", the DICOM / ITK convention.
- `Volume.affine` maps array indices in array order, (z, y, x, 1), to RAS+ world millimetres
  (the NIfTI / nibabel world). `spacing` is the voxel size in mm in array order (dz, dy, dx).
- Canonicalising only permutes and flips axes (exact); nothing is resampled, so an oblique
  volume stays oblique. `Volume.native` keeps the file's own geometry for `write_label_like`.
"""

from __future__ import annotations

import gzip
import itertools
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform

from ..errors import DataError
from ..files import atomic_path
from .dicom import first_line

# name ending -> format, longest first so "a.nii.gz" is not taken for ".gz"
FORMATS = {".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "mha",
           ".mhd": "mhd"}
LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")  # single files, so they can be written atomically
MAX_CHANNELS = 4  # a longer 4th axis is a time series, not channels
GZIP_REASON = "truncated or corrupt gzip data"
CANONICAL = axcodes2ornt(("S", "P", "L"))  # array axes (Z, Y, X)
# 1 mm voxels in the canonical directions: array index (z, y, x) lies at RAS (-x, -y, z) mm
CANONICAL_AXES = np.array([[0, 0, -1, 0], [0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
LPS_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # ITK world (LPS) <-> nibabel world (RAS); its own inverse
_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR"}  # MetaImage "Modality" values


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
    format: str = ""                # "nifti", "nrrd", "mha", "mhd"; "" for wrapped 2-D images
    orientation: str = ""           # axis codes of the file's (i, j, k), as stored: "RAS", "LPS"...
    modality: str = ""              # "CT", "MR" when the file says (NIfTI never does)
    native: Native | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """The spatial (Z, Y, X) size."""
        return tuple(self.array.shape[-3:])

    @property
    def channels(self) -> int:
        return self.array.shape[0] if self.array.ndim == 4 else 1

    @classmethod
    def from_2d(cls, array: np.ndarray) -> Volume:
        """A 2-D image (H, W) or (H, W, C) as one axial slice, (1, H, W) or (C, 1, H, W), with
        1 mm voxels at the origin in the canonical directions."""
        array = np.asarray(array)
        vol = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)[:, None]
        return cls(np.ascontiguousarray(vol), CANONICAL_AXES.copy(), (1.0, 1.0, 1.0))


def volume_suffix(path: str | Path) -> str:
    """The volume file ending of `path` (".nii.gz", ".nrrd"...), or ""."""
    name = Path(path).name.lower()
    return next((s for s in FORMATS if name.endswith(s)), "")


def volume_stem(path: str | Path) -> str:
    """The name without its volume ending: "a.nii.gz" -> "a" (Path.stem would give "a.nii")."""
    path = Path(path)
    suffix = volume_suffix(path)
    return path.name[:-len(suffix)] if suffix else path.stem


def is_volume_file(path: str | Path) -> bool:
    """A visible file with a volume ending (macOS "._*" resource forks are hidden files)."""
    path = Path(path)
    return not path.name.startswith(".") and bool(volume_suffix(path)) and path.is_file()


def volume_files(folder: str | Path) -> list[Path]:
    """Volume files directly in `folder` (not recursive), sorted by name."""
    return sorted((p for p in Path(folder).iterdir() if is_volume_file(p)), key=lambda p: p.name)


def orientation_code(affine: np.ndarray) -> str:
    """nibabel's axis codes of an affine's voxel axes, in column order: "RAS", "LPS", "SPL"..."""
    return "".join(nib.aff2axcodes(affine))


def read_volume(path: str | Path, *, mask: bool = False) -> Volume:
    """A volume file in the canonical orientation: images as float32 (scaling applied), masks
    (`mask=True`) as their exact integer labels. Every failure is a DataError with a one-line
    reason (no path). A folder is a DICOM series (see dicom_series)."""
    path = Path(path)
    if path.is_dir():
        from .dicom_series import read_dicom_series

        if mask:
            raise DataError("a label must be a single file (a label volume or a DICOM SEG)")
        return read_dicom_series(path)
    suffix = volume_suffix(path)
    if not suffix:
        raise DataError(f"not a volume file (expected {', '.join(FORMATS)})")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DataError(f"cannot open file ({e.strerror or e})") from e
    if size == 0:
        raise DataError("empty file (0 bytes)")
    fmt = FORMATS[suffix]
    read = _read_nifti if fmt == "nifti" else _read_itk
    return canonical_volume(*read(path, fmt, mask), fmt, mask)


def canonical_volume(data: np.ndarray, affine: np.ndarray, header, modality: str, source: list[str],
                     fmt: str, mask: bool) -> Volume:
    """A Volume in the canonical orientation from data in a file's (i, j, k[, c]) order and its
    voxel-to-RAS affine."""
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


def read_geometry(path: str | Path) -> Volume:
    """A volume file's canonical shape and affine from its header alone (no voxels decoded): the
    array is a zero-sized-memory placeholder of the right shape (a DICOM series folder is read
    whole). DataError as read_volume."""
    path = Path(path)
    if path.is_dir():
        return read_volume(path)
    suffix = volume_suffix(path)
    if not suffix:
        raise DataError(f"not a volume file (expected {', '.join(FORMATS)})")
    try:
        if FORMATS[suffix] == "nifti":
            img = nib.load(str(path))
            shape, affine = tuple(img.shape), img.affine.astype(np.float64)
        else:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            reader.ReadImageInformation()
            dim = reader.GetDimension()
            size = reader.GetSize()
            direction = np.eye(max(dim, 3))  # a 2-D image is one slice, 1 mm thick
            direction[:dim, :dim] = np.reshape(reader.GetDirection(), (dim, dim))
            spacing = (tuple(reader.GetSpacing()) + (1.0, 1.0))[:3]
            origin = (tuple(reader.GetOrigin()) + (0.0, 0.0))[:3]
            lps = np.eye(4)
            lps[:3, :3] = direction[:3, :3] * np.asarray(spacing)
            lps[:3, 3] = origin
            affine = LPS_RAS @ lps
            comps = reader.GetNumberOfComponents()
            shape = tuple(size) + ((comps,) if comps > 1 else ())
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"cannot read the header ({_no_path(e, path)})") from e
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
    return Volume(placeholder, canonical, spacing, [str(path)], FORMATS[suffix], orientation_code(affine))


def read_channels(paths: list[str | Path]) -> Volume:
    """One image from one file per channel (nnU-Net's case_0000, case_0001...): (C, Z, Y, X).
    All channels must share the first one's geometry."""
    volumes = []
    for i, p in enumerate(paths):
        try:
            volumes.append(read_volume(p))
        except DataError as e:  # say which channel's file it was
            raise DataError(f"channel {i} ({Path(p).name}): {e}" if i else str(e)) from e
    first = volumes[0]
    for i, vol in enumerate(volumes[1:], 1):
        if (reason := check_same_geometry(first, vol, what=f"channel {i}")) is not None:
            raise DataError(reason)
    arrays = [v.array if v.array.ndim == 4 else v.array[None] for v in volumes]
    stacked = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
    return Volume(stacked, first.affine, first.spacing, [s for v in volumes for s in v.source],
                  first.format, first.orientation, first.modality, first.native)


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


def write_label_like(labels_canonical: np.ndarray, like: Volume, out_path: str | Path) -> Path:
    """Write a canonical (Z, Y, X) label map in the geometry of the file `like` was read from
    (same voxel order, affine / sform / qform, or spacing / origin / direction), as uint8 or
    uint16. The format follows `out_path`'s ending (.nii.gz, .nii, .nrrd, .mha); NIfTI output
    keeps the header of a NIfTI `like`. Written atomically."""
    out_path = Path(out_path)
    suffix = volume_suffix(out_path)
    if suffix not in LABEL_SUFFIXES:
        raise ValueError(f"cannot write labels to {out_path.name}: use {', '.join(LABEL_SUFFIXES)}")
    if like.native is None:
        raise ValueError("the volume was not read from a file: no geometry to write")
    labels = np.asarray(labels_canonical)
    if labels.shape != like.shape:
        raise ValueError(f"labels are {_size(labels.shape)} but the volume is {_size(like.shape)}")
    native = like.native
    data = np.ascontiguousarray(to_native(labels, like).astype(_label_dtype(labels)))
    with atomic_path(out_path, suffix) as tmp:
        if suffix.startswith(".nii"):
            nib.save(_nifti_label(data, native), tmp)
        else:
            sitk.WriteImage(_itk_label(data, native.affine), str(tmp), useCompression=True)
    return out_path


def _read_nifti(path: Path, fmt: str, mask: bool):
    """(data in the file's (i, j, k[, t]) order, affine, header, modality, files)."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        if gz != path.name.lower().endswith(".gz"):
            raise DataError("gzip-compressed data in a .nii file (should be named .nii.gz)" if gz
                            else "not gzip-compressed although named .gz")
        with (gzip.open if gz else open)(path, "rb") as f:
            klass = _nifti_class(f.read(544))
            f.seek(0)
            holder = nib.FileHolder(fileobj=f)
            img = klass.from_file_map({"header": holder, "image": holder}, mmap=False)
            # asanyarray(dataobj) applies scl_slope/inter too, but keeps the stored integer dtype
            # when there is no scaling, so labels stay exact
            data = np.asanyarray(img.dataobj) if mask else img.get_fdata(dtype=np.float32)
            # nibabel reads only the bytes it needs, so gzip never reaches its CRC and length
            # check; reading on to the end does it
            while gz and f.read(1 << 20):
                pass
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(GZIP_REASON) from e
    except DataError:
        raise
    except OSError as e:  # nibabel: "Expected N bytes, got M bytes"
        raise DataError("file is truncated (less voxel data than the header says)") from e
    except Exception as e:
        raise DataError(f"not a valid NIfTI file ({_no_path(e, path)})") from e
    return data, img.affine.astype(np.float64), img.header.copy(), "", [str(path)]


def _nifti_class(head: bytes) -> type[nib.Nifti1Image]:
    """NIfTI-1 or NIfTI-2, from the header's magic."""
    if head[4:8] == b"n+2\0":
        return nib.Nifti2Image
    if head[344:348] == b"n+1\0":
        return nib.Nifti1Image
    if head[344:348] == b"ni1\0":
        raise DataError("NIfTI header of a .hdr/.img pair; only single .nii files are supported")
    raise DataError("not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")


def _read_itk(path: Path, fmt: str, mask: bool):
    """(data in (i, j, k[, c]) order, RAS affine, None, modality, files) of NRRD / MetaImage."""
    source = [str(path)]
    if path.name.lower().endswith((".mhd", ".nhdr")):
        if (data_file := _data_file(path)) is not None:
            if not data_file.is_file():
                raise DataError(f"its data file {data_file.name} is missing")
            source.append(str(data_file))
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as e:  # ITK's messages hold paths and source lines: keep only the gist
        text = str(e).lower()
        if "gzip" in text or "zlib" in text or "inflate" in text:
            raise DataError(GZIP_REASON) from e
        if "unable to determine imageio" in text:
            raise DataError(f"not a valid {fmt.upper()} file (unrecognised header)") from e
        raise DataError(f"cannot read the {fmt.upper()} file (truncated or corrupt data)") from e
    key = "Modality"
    modality = _MODALITIES.get(img.GetMetaData(key), "") if img.HasMetaDataKey(key) else ""
    return (*itk_data(img, mask), None, modality, source)


def itk_data(img: sitk.Image, mask: bool) -> tuple[np.ndarray, np.ndarray]:
    """(data in (i, j, k[, c or t]) order, voxel-to-RAS affine) of a SimpleITK image."""
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)  # one slice, 1 mm thick
    dim, comps = img.GetDimension(), img.GetNumberOfComponentsPerPixel()
    if dim > 4 or (dim == 4 and comps > 1):
        raise DataError(f"{dim}-D image with {comps} components per voxel; expected a 3-D volume")
    direction = np.reshape(img.GetDirection(), (dim, dim))[:3, :3]
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(img.GetSpacing()[:3])
    lps[:3, 3] = img.GetOrigin()[:3]
    view = sitk.GetArrayViewFromImage(img)  # (k, j, i), (k, j, i, c) or (t, k, j, i)
    if dim == 4:
        view = np.moveaxis(view, 0, -1)
    view = np.swapaxes(view, 0, 2)  # (i, j, k[, c or t])
    data = np.array(view) if mask else view.astype(np.float32)
    return data, LPS_RAS @ lps


def _data_file(path: Path) -> Path | None:
    """The data file a detached header (.mhd, .nhdr) names, when it names a single file."""
    with open(path, "rb") as f:
        text = f.read(65536).decode("latin-1")
    m = re.search(r"^\s*(?:ElementDataFile\s*=|data ?file:)\s*(\S+)\s*$", text, re.MULTILINE | re.IGNORECASE)
    if m is None or m.group(1).upper() in ("LOCAL", "LIST") or "%" in m.group(1):
        return None
    return path.parent / m.group(1)


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


def _nifti_label(data: np.ndarray, native: Native) -> nib.Nifti1Image:
    if native.header is None:  # from NRRD / MetaImage: both transforms say "scanner"
        img = nib.Nifti1Image(data, native.affine)
        img.set_sform(native.affine, code=1)
        img.set_qform(native.affine, code=1)
        return img
    header = native.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"] = header["cal_max"] = 0  # the image's display window means nothing here
    header.set_intent("label")
    klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    # affine None: the copied header's sform and qform (and their codes) are kept as they are
    return klass(data, None, header)


def _itk_label(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    lps = LPS_RAS @ affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img = sitk.GetImageFromArray(data.transpose(2, 1, 0))  # ITK arrays run (k, j, i)
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    return img


def _no_path(exc: BaseException, path: Path) -> str:
    """The exception's first line without the file's path or name (messages carry no paths)."""
    return first_line(exc).replace(str(path), "the file").replace(path.name, "the file")


def _size(shape: tuple[int, ...]) -> str:
    """A (Z, Y, X) size as viewers show it, x by y by z: "64x64x30"."""
    return "x".join(str(n) for n in reversed(shape))
