"""Pairing images with masks by stem."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from segstudio.config import DataConfig
from segstudio.data import load_dataset
from segstudio.data.pairing import pair_files, pair_key


@pytest.mark.parametrize("suffix", ["", "_mask", "_seg", "_label", "_labels", "_gt",
                                    "-mask", "_MASK", "-Seg", "_GT", "-labels", "_masks", "_cp_masks"])
def test_mask_suffixes(suffix):
    img, mask = Path("case_01.png"), Path(f"case_01{suffix}.tif")
    p = pair_files([img], [mask])
    assert p.pairs == [(img, mask)] and not p.unmatched_images and not p.unmatched_masks


def test_keys_only_strip_known_suffixes():
    assert pair_key(Path("A_Mask.png")) == "a"
    assert pair_key(Path("a_masked.png")) == "a_masked"
    assert pair_key(Path("a_gt_mask.png")) == "a_gt"
    assert pair_key(Path("a_cp_masks.png")) == "a" and pair_key(Path("a_cp.png")) == "a_cp"


def test_unmatched_and_duplicates():
    images = [Path("a.png"), Path("b.png"), Path("b.jpg")]
    masks = [Path("a.png"), Path("a_mask.png"), Path("c_mask.png")]
    p = pair_files(images, masks)
    assert p.pairs == [(Path("a.png"), Path("a.png"))]
    assert p.unmatched_images == [Path("b.png")]
    assert p.unmatched_masks == [Path("c_mask.png")]
    reasons = {str(f): r for f, r in p.duplicates}
    assert "another mask" in reasons["a_mask.png"] and "same name" in reasons["b.jpg"]


def test_different_extensions_load(data_dirs, mk):
    images, masks = data_dirs
    mk.png(images / "x.png", mk.gradient())
    tifffile.imwrite(masks / "x_Mask.tiff", mk.square())
    mk.dicom(images / "y.dcm", mk.gradient().astype(np.int16))
    mk.png(masks / "y-seg.png", mk.square())
    data, report = load_dataset(DataConfig(str(images), str(masks)), 16)
    assert sorted(data.names) == ["x", "y"] and report.n_pairs == 2


def test_masks_in_the_image_folder(tmp_path, mk):
    for stem in ("a", "b", "c"):
        mk.png(tmp_path / f"{stem}.png", mk.gradient())
        mk.png(tmp_path / f"{stem}_mask.png", mk.square())
    mk.png(tmp_path / "lonely.png", mk.gradient())
    data, report = load_dataset(DataConfig(str(tmp_path), str(tmp_path)), 16)
    assert sorted(data.names) == ["a", "b", "c"]
    assert report.unmatched_images == ["lonely.png"] and report.unmatched_masks == []
    assert any("share a folder" in n for n in report.notes)
