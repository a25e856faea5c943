"""NIfTI-1 and NIfTI-2 single files (.nii, .nii.gz) with nibabel: read in the canonical
orientation, labels written back with the image's header."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from ..errors import DataError
from .reasons import GZIP_REASON, no_path
from .volume import Native, Volume, canonical_volume, header_volume

ENDINGS = {".nii.gz": "nifti", ".nii": "nifti"}  # name ending -> format


def can_read(path: Path, head: bytes) -> bool:
    """Named .nii / .nii.gz, or an uncompressed single-file NIfTI-1 / NIfTI-2 header."""
    return path.name.lower().endswith(tuple(ENDINGS)) or head[344:348] == b"n+1\0" or head[4:8] == b"n+2\0"


def read(path: Path, *, mask: bool = False) -> Volume:
    """The file as a canonical Volume: an image as float32 (scl_slope/inter applied), a mask
    (`mask=True`) as its exact integer labels. DataError with a one-line reason."""
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
        raise DataError(f"not a valid NIfTI file ({no_path(e, path)})") from e
    return canonical_volume(data, img.affine.astype(np.float64), img.header.copy(), "", [str(path)], "nifti", mask)


def read_geometry(path: Path) -> Volume:
    """The file's canonical shape and affine from its header (see volume.header_volume)."""
    img = nib.load(str(path))
    return header_volume(tuple(img.shape), img.affine.astype(np.float64), [str(path)], "nifti")


def write(data: np.ndarray, native: Native, path: Path) -> None:
    """Labels in the file voxel order of `native` (see volume.native_labels) to `path`, keeping a
    NIfTI source's header (sform, qform and their codes); from NRRD / MetaImage both transforms
    say "scanner"."""
    if native.header is None:
        img = nib.Nifti1Image(data, native.affine)
        img.set_sform(native.affine, code=1)
        img.set_qform(native.affine, code=1)
    else:
        header = native.header.copy()
        header.set_data_dtype(data.dtype)
        header.set_slope_inter(1.0, 0.0)
        header["cal_min"] = header["cal_max"] = 0  # the image's display window means nothing here
        header.set_intent("label")
        klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        # affine None: the copied header's sform and qform (and their codes) are kept as they are
        img = klass(data, None, header)
    nib.save(img, path)


def _nifti_class(head: bytes) -> type[nib.Nifti1Image]:
    """NIfTI-1 or NIfTI-2, from the header's magic."""
    if head[4:8] == b"n+2\0":
        return nib.Nifti2Image
    if head[344:348] == b"n+1\0":
        return nib.Nifti1Image
    if head[344:348] == b"ni1\0":
        raise DataError("NIfTI header of a .hdr/.img pair; only single .nii files are supported")
    raise DataError("not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")
