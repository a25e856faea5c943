"""NRRD and MetaImage (.nrrd, .nhdr, .mha, .mhd) with SimpleITK: read in the canonical
orientation, labels written back with the image's spacing, origin and direction. The DICOM
series reader shares `itk_data`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import DataError
from .reasons import GZIP_REASON
from .volume import LPS_RAS, Native, Volume, canonical_volume, header_volume

ENDINGS = {".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "mha", ".mhd": "mhd"}  # name ending -> format
_MODALITIES = {"MET_MOD_CT": "CT", "MET_MOD_MR": "MR"}  # MetaImage "Modality" values
_METAIMAGE = re.compile(rb"\s*(ObjectType|NDims)\s*=")  # how a MetaImage header begins


def can_read(path: Path, head: bytes) -> bool:
    """Named like NRRD / MetaImage, or beginning like one ("NRRD000n", "ObjectType = ...")."""
    return (path.name.lower().endswith(tuple(ENDINGS)) or head.startswith(b"NRRD")
            or _METAIMAGE.match(head) is not None)


def read(path: Path, *, mask: bool = False) -> Volume:
    """The file as a canonical Volume: an image as float32, a mask (`mask=True`) as its exact
    integer labels; a detached header's data file is named in `source` too. DataError with a
    one-line reason (ITK's messages hold paths and source lines: only the gist is kept)."""
    fmt, image_io = _format(path)
    source = [str(path)]
    if path.name.lower().endswith((".mhd", ".nhdr")):
        if (data_file := _data_file(path)) is not None:
            if not data_file.is_file():
                raise DataError(f"its data file {data_file.name} is missing")
            source.append(str(data_file))
    try:
        img = sitk.ReadImage(str(path), imageIO=image_io)
    except RuntimeError as e:
        text = str(e).lower()
        if "gzip" in text or "zlib" in text or "inflate" in text:
            raise DataError(GZIP_REASON) from e
        if "unable to determine imageio" in text:
            raise DataError(f"not a valid {fmt.upper()} file (unrecognised header)") from e
        raise DataError(f"cannot read the {fmt.upper()} file (truncated or corrupt data)") from e
    key = "Modality"
    modality = _MODALITIES.get(img.GetMetaData(key), "") if img.HasMetaDataKey(key) else ""
    return canonical_volume(*itk_data(img, mask), None, modality, source, fmt, mask)


def read_geometry(path: Path) -> Volume:
    """The file's canonical shape and affine from its header (see volume.header_volume)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    fmt, image_io = _format(path)
    reader.SetImageIO(image_io)
    reader.ReadImageInformation()
    dim = reader.GetDimension()
    direction = np.eye(max(dim, 3))  # a 2-D image is one slice, 1 mm thick
    direction[:dim, :dim] = np.reshape(reader.GetDirection(), (dim, dim))
    spacing = (tuple(reader.GetSpacing()) + (1.0, 1.0))[:3]
    origin = (tuple(reader.GetOrigin()) + (0.0, 0.0))[:3]
    lps = np.eye(4)
    lps[:3, :3] = direction[:3, :3] * np.asarray(spacing)
    lps[:3, 3] = origin
    comps = reader.GetNumberOfComponents()
    shape = tuple(reader.GetSize()) + ((comps,) if comps > 1 else ())
    return header_volume(shape, LPS_RAS @ lps, [str(path)], fmt)


def write(data: np.ndarray, native: Native, path: Path) -> None:
    """Labels in the file voxel order of `native` (see volume.native_labels) to `path`, with the
    spacing, origin and direction of `native.affine`, compressed."""
    lps = LPS_RAS @ native.affine
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    img = sitk.GetImageFromArray(data.transpose(2, 1, 0))  # ITK arrays run (k, j, i)
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    sitk.WriteImage(img, str(path), useCompression=True)


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


def _format(path: Path) -> tuple[str, str]:
    """(format, the SimpleITK ImageIO to use): "nrrd", "mha" or "mhd" by the name, ITK choosing
    by it too (""); a file without such a name by its first bytes, with the ImageIO named
    (ITK goes by the name alone)."""
    name = path.name.lower()
    fmt = next((f for ending, f in ENDINGS.items() if name.endswith(ending)), "")
    if fmt:
        return fmt, ""
    with open(path, "rb") as f:
        return ("nrrd", "NrrdImageIO") if f.read(4) == b"NRRD" else ("mha", "MetaImageIO")


def _data_file(path: Path) -> Path | None:
    """The data file a detached header (.mhd, .nhdr) names, when it names a single file."""
    with open(path, "rb") as f:
        text = f.read(65536).decode("latin-1")
    m = re.search(r"^\s*(?:ElementDataFile\s*=|data ?file:)\s*(\S+)\s*$", text, re.MULTILINE | re.IGNORECASE)
    if m is None or m.group(1).upper() in ("LOCAL", "LIST") or "%" in m.group(1):
        return None
    return path.parent / m.group(1)
