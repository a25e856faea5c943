"""DICOM SEG (highdicom): read, its segments become classes named by their labels, and each
source image gets its label image through the SOP Instance UIDs the SEG references; write,
predicted class masks as one SEG object referencing the source images of a series."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom

from .. import __version__
from ..errors import DataError
from .dicom_file import open_capped, quiet, read_header
from .reasons import first_line
from .sniff import format_of, looks_dicom
from .volume import Volume, canonical_volume

NAMES_SOURCE = "DICOM SEG segment labels"
logging.getLogger("highdicom").setLevel(logging.ERROR)  # its notes on empty frames went to stderr
SERIES_NUMBER = 9901  # conventionally high, so the SEG series sorts after the source series
# Type 2 patient/study attributes the SEG copies from its sources; exporters often leave them out
# and highdicom then refuses the sources, so missing ones are added empty (in memory only).
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "StudyID", "AccessionNumber", "ReferringPhysicianName")


@dataclass
class SegMask:
    seg: Any                 # highdicom.seg.Segmentation
    labels: dict[int, str]   # segment number -> segment label
    references: set[str]     # referenced source SOP Instance UIDs


def can_read(path: Path, head: bytes) -> bool:
    """A DICOM file whose header says Segmentation Storage."""
    return is_seg_file(path) if looks_dicom(format_of(head), path) else False


def is_seg_file(path: Path) -> bool:
    header = read_header(Path(path)) if Path(path).is_file() else None
    return header is not None and header.is_seg


def read(path: Path) -> SegMask:
    """Parse a DICOM SEG file; DataError with a one-line reason when highdicom cannot. (A SEG
    labels other images: see seg_frames and read_volume for its label images.)"""
    import highdicom as hd  # only needed (and slow to import) when there are SEG files

    try:
        with quiet(), open_capped(path) as f:
            seg = hd.seg.segread(f)
            labels = {int(n): str(seg.get_segment_description(n).SegmentLabel or f"segment {n}")
                      for n in seg.segment_numbers}
            references = {str(uids[2]) for uids in seg.get_source_image_uids()}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:  # including panics of Rust-based decoders
        raise DataError(f"cannot read DICOM SEG: {first_line(e)}") from e
    if not labels:
        raise DataError("DICOM SEG without segments")
    return SegMask(seg, labels, references)


def class_names(segs: list[SegMask]) -> list[str]:
    """"background" plus every distinct segment label, in order of appearance."""
    names = ["background"]
    for s in segs:
        names += [label for _, label in sorted(s.labels.items()) if label not in names]
    return names


def seg_frames(mask: SegMask, sop_uid: str, n_frames: int, names: list[str]) -> list[np.ndarray]:
    """Label images (values index `names`) for the `n_frames` frames of one source image;
    overlapping segments resolve to the higher segment number."""
    opts = dict(combine_segments=True, skip_overlap_checks=True, ignore_spatial_locations=True)
    try:
        with quiet():
            if n_frames > 1:
                arr = mask.seg.get_pixels_by_source_frame(
                    sop_uid, source_frame_numbers=list(range(1, n_frames + 1)), **opts)
            else:
                arr = mask.seg.get_pixels_by_source_instance([sop_uid], **opts)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        raise DataError(f"cannot read DICOM SEG frames: {first_line(e)}") from e
    lut = np.zeros(max(mask.labels) + 1, dtype=np.uint8)
    for number, label in mask.labels.items():
        lut[number] = names.index(label)
    return list(lut[np.asarray(arr, dtype=np.int64)])


def read_volume(seg_path: Path, image: Volume, names: list[str]) -> Volume:
    """A DICOM SEG's labels as a label volume in the geometry of the series `image` was read
    from (its slices are the SEG's referenced images); values index `names` (background first,
    then the segment labels of the dataset's SEGs)."""
    seg = read(Path(seg_path))
    slices = [Path(p) for p in image.source]
    headers = [read_header(p) for p in slices]
    if not all(h is not None and h.sop_uid in seg.references for h in headers):
        raise DataError("the DICOM SEG does not reference every slice of the series")
    planes = [seg_frames(seg, h.sop_uid, 1, names)[0] for h in headers]  # (rows, cols) each
    native = np.stack(planes, axis=-1).transpose(1, 0, 2)  # (i, j, k): columns, rows, slices
    affine = image.native.affine
    if native.shape != image.native.shape:
        raise DataError(f"the DICOM SEG's frames are {native.shape[0]}x{native.shape[1]}, the series' "
                        f"slices {image.native.shape[0]}x{image.native.shape[1]}")
    return canonical_volume(native, affine, None, "", [str(seg_path)], "dicom-seg", True)


def write(source_paths: list[Path], masks: list[np.ndarray], codes: list[str], out: Path | BinaryIO,
          segmentation_type: str = "BINARY") -> Path | BinaryIO:
    """Write `masks` ((H, W) uint8 class indices at the source size, one per source frame, in
    the order of `source_paths`) as a DICOM SEG for one series; classes 1.. become segments
    labelled by `codes` (codes[0] is the background), into a file or a binary stream. Returns
    `out`; DataError when the sources and masks do not fit together or highdicom refuses them."""
    import highdicom as hd  # slow to import: only when a SEG is written
    from pydicom.sr.codedict import codes as sr_codes

    if not source_paths:
        raise DataError("No source images for the DICOM SEG")
    try:
        with quiet():
            sources = [pydicom.dcmread(p, force=True) for p in source_paths]
    except Exception as e:  # unreadable here although it was predicted: report, do not crash
        raise DataError(f"Cannot read the source images: {first_line(e, 200)}") from e
    for ds in sources:
        for keyword in TYPE2_COPIED:
            if keyword not in ds:
                setattr(ds, keyword, "")
    series = {str(ds.get("SeriesInstanceUID", "")) for ds in sources}
    if len(series) != 1:
        raise DataError(f"The source images come from {len(series)} series; "
                        "write one DICOM SEG per series")
    n_frames = sum(int(ds.get("NumberOfFrames", 1) or 1) for ds in sources)
    if len(masks) != n_frames:
        raise DataError(f"{len(masks)} mask(s) for {n_frames} source frame(s)")
    shapes = {(int(ds.Rows), int(ds.Columns)) for ds in sources}
    if len(shapes) != 1 or any(m.shape != next(iter(shapes)) for m in masks):
        raise DataError("Every mask must have the size of its source image")
    labels = np.stack(masks).astype(np.uint8)
    if labels.max(initial=0) >= len(codes):
        raise DataError(f"Mask value {int(labels.max())} has no class name ({len(codes)} codes)")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="segstudio", version=__version__, family=sr_codes.cid7162.ArtificialIntelligence)
    descriptions = [hd.seg.SegmentDescription(
        segment_number=i, segment_label=name[:64] or f"class {i}",
        segmented_property_category=sr_codes.SCT.Tissue,
        segmented_property_type=sr_codes.SCT.Tissue,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm) for i, name in enumerate(codes[1:], start=1)]
    try:
        with quiet():
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=labels,
                segmentation_type=segmentation_type, segment_descriptions=descriptions,
                series_instance_uid=hd.UID(), series_number=SERIES_NUMBER,
                sop_instance_uid=hd.UID(), instance_number=1, manufacturer="segstudio",
                manufacturer_model_name="segstudio U-Net", software_versions=__version__,
                device_serial_number="none", series_description="segstudio prediction")
            buf = io.BytesIO()
            seg.save_as(buf)
    except AttributeError as e:
        missing = re.search(r"attribute '(\w+)'", str(e))
        raise DataError("Cannot write the DICOM SEG: the source images lack "
                        f"{missing.group(1) if missing else 'an attribute'} that it needs") from e
    except Exception as e:  # highdicom refuses sources in many ways (missing attributes...)
        raise DataError(f"Cannot write the DICOM SEG: {first_line(e, 200)}") from e
    try:  # some sources (NM, secondary capture) give SEGs that highdicom cannot read back
        with quiet():
            hd.seg.segread(io.BytesIO(buf.getvalue()))
    except Exception as e:
        raise DataError("Cannot write a DICOM SEG that can be read back for these source images "
                        f"({first_line(e, 120)})") from e
    if hasattr(out, "write"):
        out.write(buf.getvalue())
    else:
        Path(out).write_bytes(buf.getvalue())
    return out
