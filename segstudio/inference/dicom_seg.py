"""Predicted class masks as one DICOM SEG object referencing the source images (highdicom)."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path
from typing import BinaryIO

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes as sr_codes

from .. import __version__
from ..data.dicom import first_line, quiet
from ..errors import DataError

logging.getLogger("highdicom").setLevel(logging.ERROR)  # its notes on empty frames went to stderr
SERIES_NUMBER = 9901  # conventionally high, so the SEG series sorts after the source series
# Type 2 patient/study attributes the SEG copies from its sources; exporters often leave them out
# and highdicom then refuses the sources, so missing ones are added empty (in memory only).
TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                "StudyID", "AccessionNumber", "ReferringPhysicianName")


def export_dicom_seg(source_paths: list[Path], masks: list[np.ndarray], codes: list[str],
                     out: Path | BinaryIO, segmentation_type: str = "BINARY") -> Path | BinaryIO:
    """Write `masks` ((H, W) uint8 class indices at the source size, one per source frame, in
    the order of `source_paths`) as a DICOM SEG for one series; classes 1.. become segments
    labelled by `codes` (codes[0] is the background), into a file or a binary stream. Returns
    `out`; DataError when the sources and masks do not fit together or highdicom refuses them."""
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
