"""The command line, run as a user would: through subprocesses."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
import pydicom
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "segstudio", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_inspect_prints_report_and_exit_codes(sample_dirs, tmp_path):
    images, masks = sample_dirs
    ok = cli("inspect", "--images", images, "--masks", masks)
    assert ok.returncode == 0, ok.stderr
    assert "background" in ok.stdout and "pairs" in ok.stdout.lower()
    missing = cli("inspect", "--images", tmp_path / "missing")
    assert missing.returncode == 2 and "missing" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "junk.png").write_bytes(b"not a png")
    bad = cli("inspect", "--images", empty)
    assert bad.returncode == 1 and "junk.png" in bad.stdout


def test_train_then_predict(sample_dirs, tmp_path):
    images, masks = sample_dirs
    run = cli("train", "--images", images, "--masks", masks, "--epochs", 1, "--size", 32, "--input", "resize",
              "--arch", "resnet18", "--no-pretrained", "--device", "cpu", "--out", tmp_path / "runs")
    assert run.returncode == 0, run.stderr
    assert "epoch 1/1" in run.stdout and "dice" in run.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / "model.pth").is_file()
    pred = cli("predict", "--model", run_dir, "--images", images, "--out", tmp_path / "masks", "--dicom-seg")
    assert pred.returncode == 0, pred.stderr
    written = sorted((tmp_path / "masks").glob("*_color.png"))
    assert len(written) == len(list(images.iterdir()))
    mask = np.asarray(Image.open(str(written[0]).replace("_color", "")))
    assert mask.max() < 3
    # one DICOM SEG per series (one series per phantom patient), referencing every source slice
    segs = sorted((tmp_path / "masks").glob("*_seg.dcm"))
    sources = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p for p in images.glob("*.dcm")}
    series = {pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID for p in sources.values()}
    assert len(segs) == len(series) and f"wrote {len(segs)} DICOM SEG" in pred.stdout
    referenced = set()
    for seg_path in segs:
        seg = hd.seg.segread(seg_path)
        assert [seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers] == ["liver", "kidney"]
        referenced |= {uid[2] for uid in seg.get_source_image_uids()}
    assert referenced == set(sources)
    first = pydicom.dcmread(sorted(images.glob("*.dcm"))[0], stop_before_pixels=True).SOPInstanceUID
    seg = next(hd.seg.segread(p) for p in segs if first in {u[2] for u in hd.seg.segread(p).get_source_image_uids()})
    back = seg.get_pixels_by_source_instance([first], combine_segments=True, ignore_spatial_locations=True)[0]
    png = np.asarray(Image.open(tmp_path / "masks" / f"{sorted(images.glob('*.dcm'))[0].stem}.png"))
    assert np.array_equal(back, png)


def test_config_file_and_overrides(sample_dirs, tmp_path):
    from segstudio.config import DataConfig, InputMode, TrainConfig

    images, masks = sample_dirs
    cfg = TrainConfig(data=DataConfig(images=str(images), masks=str(masks)), epochs=5, size=32,
                      out_dir=str(tmp_path / "runs"), input_mode=InputMode.resize)
    (tmp_path / "cfg.json").write_text(cfg.to_json())
    run = cli("train", "--config", tmp_path / "cfg.json", "--epochs", 1, "--no-pretrained", "--arch", "resnet18")
    assert run.returncode == 0, run.stderr
    saved = TrainConfig.load(next((tmp_path / "runs").iterdir()) / "config.json")
    assert saved.epochs == 1 and saved.size == 32 and not saved.pretrained


def test_ctrl_c_stops_cleanly_and_keeps_the_best_model(sample_dirs, tmp_path):
    images, masks = sample_dirs
    proc = subprocess.Popen([sys.executable, "-m", "segstudio", "train", "--images", str(images), "--masks",
                             str(masks), "--epochs", "200", "--size", "32", "--input", "resize", "--arch", "resnet18", "--no-pretrained",
                             "--device", "cpu", "--out", str(tmp_path / "runs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    deadline = time.time() + 240
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("epoch 1/"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # stopped by the user: not a success for `&&` chains
    assert "stopped after" in out
    run_dir = next((tmp_path / "runs").iterdir())
    assert (run_dir / "model.pth").is_file() and (run_dir / "metrics.csv").is_file()


def test_bad_options_are_refused_before_anything_runs(sample_dirs):
    images, masks = sample_dirs
    for option, value in (("--epochs", 0), ("--bs", -1), ("--size", 8), ("--valid-pct", 0), ("--valid-pct", 150),
                          ("--lr-hi", 0)):
        out = cli("train", "--images", images, "--masks", masks, option, value, timeout=60)
        assert out.returncode == 2 and option in out.stderr, (option, out.stderr)


def test_valid_pct_takes_a_fraction_or_a_percentage():
    from segstudio.cli import build_parser, train_config

    for text in ("0.3", "30"):
        args = build_parser().parse_args(["train", "--images", "i", "--masks", "m", "--valid-pct", text])
        assert train_config(args).data.valid_pct == pytest.approx(0.3)


def test_version_lists_libraries():
    out = cli("--version")
    assert out.returncode == 0
    for name in ("segstudio", "torch", "fastai", "PySide6", "device"):
        assert name in out.stdout


def test_one_pair_is_refused_with_one_message_and_inspect_agrees(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    Image.fromarray(np.arange(1024, dtype=np.uint16).reshape(32, 32)).save(images / "a.png")
    Image.fromarray((np.arange(1024).reshape(32, 32) % 5 == 0).astype(np.uint8)).save(masks / "a.png")
    inspected = cli("inspect", "--images", images, "--masks", masks, timeout=60)
    assert inspected.returncode == 1 and "at least 2 usable image/mask pairs" in inspected.stdout
    run = cli("train", "--images", images, "--masks", masks, "--no-pretrained", "--arch", "resnet18",
              "--device", "cpu", "--out", tmp_path / "runs")
    assert run.returncode == 1 and run.stderr.count("at least 2 usable image/mask pairs") == 1, run.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


def test_inspect_of_a_folder_without_images_says_why(tmp_path):
    (tmp_path / "notes.txt").write_text("scan log")
    (tmp_path / "series").mkdir()
    out = cli("inspect", "--images", tmp_path, timeout=60)
    assert out.returncode == 1 and "No problems found" not in out.stdout
    assert "No image files" in out.stdout and "notes.txt" in out.stdout and "series" in out.stdout
    (tmp_path / "brain.nii.gz").write_bytes(b"\x1f\x8b")  # a scan, truncated
    out = cli("inspect", "--images", tmp_path, timeout=60)
    assert out.returncode == 1 and "brain.nii.gz: truncated or corrupt gzip data" in out.stdout


def test_mask_options_reach_the_config():
    from segstudio.cli import build_parser, train_config

    args = build_parser().parse_args(["train", "--images", "i", "--masks", "m", "--labels", "instances",
                                      "--class-names", "nucleus"])
    cfg = train_config(args)
    assert cfg.data.labels == "instances" and cfg.data.class_names == ["nucleus"]


def test_train_and_predict_scans_from_a_dataset_root(tmp_path):
    from segstudio.data.sample_volumes import sample_volumes

    images, _ = sample_volumes(tmp_path / "scans")
    run = cli("train", "--images", images.parent, "--epochs", 1, "--size", 32, "--arch", "resnet18",
              "--no-pretrained", "--device", "cpu", "--context", 1, "--out", tmp_path / "runs")
    assert run.returncode == 0, run.stderr
    assert "epoch 1/1" in run.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    pred = cli("predict", "--model", run_dir, "--images", images, "--out", tmp_path / "pred")
    assert pred.returncode == 0, pred.stderr
    assert len(list((tmp_path / "pred").glob("case_*.nii.gz"))) == 6
    assert (tmp_path / "pred" / "volumes.csv").read_text().startswith("case,class,voxels,ml")
