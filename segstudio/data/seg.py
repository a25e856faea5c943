"""DICOM SEG masks (read with highdicom): segments become classes named by their labels, and
each source image gets its label image through the SOP Instance UIDs the SEG references."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .dicom import first_line, open_capped, quiet

NAMES_SOURCE = "DICOM SEG segment labels"


@dataclass
class SegMask:
    seg: Any                 # highdicom.seg.Segmentation
    labels: dict[int, str]   # segment number -> segment label
    references: set[str]     # referenced source SOP Instance UIDs


def read_seg(path: Path) -> SegMask:
    """Parse a DICOM SEG file; DataError with a one-line reason when highdicom cannot."""
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
