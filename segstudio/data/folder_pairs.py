"""Find the image/mask pairs of two folders: list them, read each DICOM header once, pair by file
stem, then DICOM SEG masks by the SOP Instance UIDs they reference, in series and slice order; the
user's corrections take their masks' places. What cannot be paired goes to the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom

from ..errors import Cancelled, DataError
from ..io import dicom_seg
from ..io.dicom_file import DicomHeader, check_image, open_capped, quiet, read_header
from ..io.dicom_seg import SegMask, class_names
from ..io.dicom_series import series_order
from ..io.registry import is_volume_file
from ..tasks import ProgressFn, StopFn
from .corrections import corrected_masks, corrections_dir
from .discovery import list_image_files
from .pairing import MASK_NAMES, Pairing, pair_files, pair_key, split_shared_folder
from .report import DatasetReport, Problem

MAX_UNMATCHED_CHECKED = 200  # images without a mask checked for a better reason (the first ones)


@dataclass
class FoundPairs:
    """The pairs of two folders and what was read to find them."""

    pairing: Pairing                  # pairs in series / slice order
    headers: dict[Path, DicomHeader]
    segs: dict[Path, SegMask]         # DICOM SEG masks that matched images
    seg_names: list[str]              # class names from their segment labels
    listed: dict[Path, list[Path]]    # the supported files of each folder, as listed


def find_pairs(images_dir: Path, masks_dir: Path, rel, report: DatasetReport,
               progress: ProgressFn, stop: StopFn) -> FoundPairs:
    """List and pair the files (by stem; DICOM SEG masks by referenced SOP Instance UID) in
    series and slice order; unmatched, duplicate and unreadable SEG files go to the report."""
    image_files = list_folder(images_dir)
    mask_files = list_folder(masks_dir) if masks_dir != images_dir else []
    listed = {images_dir: image_files, masks_dir: mask_files or image_files}
    if images_dir == masks_dir:
        image_files, mask_files = split_shared_folder(image_files)
        report.notes.append(f"images and masks share a folder: masks are the files named {MASK_NAMES}")
    mask_files = _with_corrections(mask_files, masks_dir, report)
    headers = {}
    for i, p in enumerate(image_files + mask_files):
        if stop():
            raise Cancelled()
        if i % 200 == 0:
            progress(0, 0, f"Reading headers ({i} of {len(image_files) + len(mask_files)})")
        if (h := read_header(p)) is not None:
            headers[p] = h
    seg_files = [p for p in image_files + mask_files if p in headers and headers[p].is_seg]
    seg_set = set(seg_files)
    image_files = [p for p in image_files if p not in seg_set]
    pairing = pair_files(image_files, [p for p in mask_files if p not in seg_set])
    segs = _pair_by_reference(pairing, seg_files, headers, rel, report)
    order = {p: i for i, p in enumerate(series_order(image_files, headers))}
    pairing.pairs.sort(key=lambda pair: order[pair[0]])
    unreadable = _unreadable(pairing.unmatched_images[:MAX_UNMATCHED_CHECKED], headers)
    report.unreadable += [Problem(rel(p), reason, images=1) for p, reason in unreadable.items()]
    pairing.unmatched_images = [p for p in pairing.unmatched_images if p not in unreadable]
    report.unmatched_images = [rel(p) for p in pairing.unmatched_images]
    report.unmatched_masks = [rel(p) for p in pairing.unmatched_masks]

    def frames(p: Path) -> int:  # as the header says (a file not read yet counts as one image)
        return headers[p].frames if p in headers else 1
    image_set = set(image_files)
    report.other += [Problem(rel(p), reason, images=frames(p) if p in image_set else 0)
                     for p, reason in pairing.duplicates]
    dup_images = sum(frames(p) for p, _ in pairing.duplicates if p in image_set)
    dup_masks = sum(frames(p) for p, _ in pairing.duplicates if p not in image_set)
    report.n_unlabelled = sum(frames(p) for p in pairing.unmatched_images)
    report.n_images = report.n_unlabelled + dup_images + len(unreadable)
    report.n_masks += sum(frames(p) for p in pairing.unmatched_masks) + dup_masks
    return FoundPairs(pairing, headers, segs, class_names(list(segs.values())), listed)


def _with_corrections(mask_files: list[Path], masks_dir: Path, report: DatasetReport) -> list[Path]:
    """The masks with the user's corrections (see corrections.py) in place of the masks they
    correct; a correction of an image that had no mask labels it."""
    corrected = {k: p for k, p in corrected_masks(masks_dir).items() if not is_volume_file(p)}
    if not corrected:
        return mask_files
    kept = [m for m in mask_files if pair_key(m) not in corrected]
    replaced = len(mask_files) - len(kept)
    report.n_corrected = len(corrected)
    report.notes.append(f"{len(corrected)} corrected mask(s) from {corrections_dir(masks_dir).name}/ used "
                        f"({replaced} in place of the original mask, {len(corrected) - replaced} for "
                        "images that had none); the masks folder is unchanged")
    return kept + list(corrected.values())


def _unreadable(images: list[Path], headers: dict[Path, DicomHeader]) -> dict[Path, str]:
    """Why the DICOM files among `images` (left without a mask) cannot be used, when they
    cannot: such a file is reported for that reason (an RT plan, a truncated file), not for its
    missing mask. Only their headers and pixel data sizes are checked, nothing is decoded."""
    reasons = {}
    for p in images:
        if p not in headers:
            continue
        try:
            with quiet(), open_capped(p) as f:
                check_image(pydicom.dcmread(f, force=True), force=True)
        except DataError as e:
            reasons[p] = str(e)
        except Exception:  # the file is read in earnest when it gets a mask
            continue
    return reasons


def _pair_by_reference(pairing: Pairing, seg_files: list[Path], headers: dict[Path, DicomHeader],
                       rel, report: DatasetReport) -> dict[Path, SegMask]:
    """Pair images left unmatched by stem with the DICOM SEG that references them."""
    segs, by_uid = {}, {}
    for p in seg_files:
        try:
            segs[p] = dicom_seg.read(p)
        except DataError as e:
            report.unreadable.append(Problem(rel(p), str(e)))
            report.n_masks += 1
            continue
        by_uid.update(dict.fromkeys(segs[p].references, p))
    unmatched, used = [], set()
    for img in pairing.unmatched_images:
        seg = by_uid.get(headers[img].sop_uid) if img in headers else None
        if seg is None:
            unmatched.append(img)
        else:
            pairing.pairs.append((img, seg))
            used.add(seg)
    pairing.unmatched_images = unmatched
    pairing.unmatched_masks += [p for p in segs if p not in used]
    return {p: s for p, s in segs.items() if p in used}


def list_folder(folder: Path) -> list[Path]:
    """The image files `folder` holds (discovery.list_image_files); an OSError becomes a DataError."""
    try:
        return list_image_files(folder)
    except OSError as e:
        raise DataError(f"Cannot list {e.filename or folder}: {e.strerror or e}") from e
