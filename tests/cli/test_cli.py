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


@pytest.mark.slow
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


@pytest.mark.slow
def test_train_then_predict(sample_dirs, tmp_path):
    images, masks = sample_dirs
    run = cli("train", "--images", images, "--masks", masks, "--epochs", 1, "--size", 32, "--bs", 8, "--input", "resize",
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_the_best_model(sample_dirs, tmp_path):
    images, masks = sample_dirs
    proc = subprocess.Popen([sys.executable, "-m", "segstudio", "train", "--images", str(images), "--masks",
                             str(masks), "--epochs", "200", "--size", "32", "--bs", "8", "--input", "resize", "--arch", "resnet18", "--no-pretrained",
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


@pytest.mark.slow
def test_bad_options_are_refused_before_anything_runs(sample_dirs):
    images, masks = sample_dirs
    for option, value in (("--epochs", 0), ("--bs", -1), ("--size", 8), ("--valid-pct", 0), ("--valid-pct", 150),
                          ("--lr-hi", 0)):
        out = cli("train", "--images", images, "--masks", masks, option, value, timeout=60)
        assert out.returncode == 2 and option in out.stderr, (option, out.stderr)


def test_valid_pct_takes_a_fraction_or_a_percentage():
    from segstudio.cli.main import build_parser
    from segstudio.cli.train import train_config

    for text in ("0.3", "30"):
        args = build_parser().parse_args(["train", "--images", "i", "--masks", "m", "--valid-pct", text])
        assert train_config(args).data.valid_pct == pytest.approx(0.3)


@pytest.mark.slow
def test_version_lists_libraries():
    out = cli("--version")
    assert out.returncode == 0
    for name in ("segstudio", "torch", "fastai", "PySide6", "device"):
        assert name in out.stdout


@pytest.mark.slow
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


@pytest.mark.slow
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
    from segstudio.cli.main import build_parser
    from segstudio.cli.train import train_config

    args = build_parser().parse_args(["train", "--images", "i", "--masks", "m", "--labels", "instances",
                                      "--class-names", "nucleus"])
    cfg = train_config(args)
    assert cfg.data.labels == "instances" and cfg.data.class_names == ["nucleus"]


@pytest.mark.slow
def test_train_and_predict_scans_from_a_dataset_root(tmp_path):
    from segstudio.data.sample_volumes import sample_volumes

    images, _ = sample_volumes(tmp_path / "scans")
    run = cli("train", "--images", images.parent, "--epochs", 1, "--size", 32, "--bs", 8, "--arch", "resnet18",
              "--no-pretrained", "--device", "cpu", "--context", 1, "--out", tmp_path / "runs")
    assert run.returncode == 0, run.stderr
    assert "epoch 1/1" in run.stdout
    run_dir = next((tmp_path / "runs").iterdir())
    pred = cli("predict", "--model", run_dir, "--images", images, "--out", tmp_path / "pred")
    assert pred.returncode == 0, pred.stderr
    assert len(list((tmp_path / "pred").glob("case_*.nii.gz"))) == 6
    assert (tmp_path / "pred" / "volumes.csv").read_text().startswith("case,class,voxels,ml")


def deny_writes_in(folder: Path, monkeypatch) -> None:
    """New files in `folder` fail as in a folder without write permission (chmod alone does not
    stop root, who may run these tests)."""
    import errno
    import tempfile

    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(folder))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


def test_unwritable_output_folders_fail_before_any_work(sample_dirs, tmp_path, monkeypatch, capsys):
    """predict, export and train into a folder that cannot be written: a clear message and exit
    status 1 before a model is loaded, an image predicted or data read; nothing written."""
    from segstudio.cli.main import main
    from segstudio.inference import Predictor
    from segstudio.training.session import TrainingSession

    images, masks = sample_dirs
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_writes_in(locked, monkeypatch)
    work = []
    monkeypatch.setattr(Predictor, "load", classmethod(lambda cls, *a, **k: work.append("load")))
    monkeypatch.setattr(TrainingSession, "run", lambda self, *a, **k: work.append("train"))
    for argv, what in ((["predict", "--model", "run", "--images", str(images), "--out", str(locked)], "output folder"),
                       (["predict", "--model", "run", "--images", str(images), "--out", str(locked / "new")],
                        "where it would be created"),
                       (["export", "--model", "run", "--out", str(locked / "m.onnx")], "folder to export into"),
                       (["train", "--images", str(images), "--masks", str(masks), "--out", str(locked)],
                        "runs folder")):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert what in err and "permission denied" in err and "Traceback" not in err, err
    assert work == [] and list(locked.iterdir()) == []


@pytest.mark.slow
def test_a_folder_without_write_permission_is_refused(tmp_path):
    from segstudio.files import NotWritable, check_writable

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user (root) can write into a read-only folder; see the simulated test above")
        with pytest.raises(NotWritable, match="permission denied"):
            check_writable(locked)
        out = cli("predict", "--model", tmp_path / "no-run", "--images", tmp_path, "--out", locked, timeout=120)
        assert out.returncode == 1 and "permission denied" in out.stderr and "Traceback" not in out.stderr
    finally:
        locked.chmod(0o755)


def test_unwritable_says_permission_read_only_or_full(tmp_path, monkeypatch):
    import errno
    import tempfile

    from segstudio.files import NotWritable, check_writable

    for code, words in ((errno.EACCES, "permission denied"), (errno.EROFS, "read-only file system"),
                        (errno.ENOSPC, "the disk is full")):
        def refuse(*args, code=code, **kwargs):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
        with pytest.raises(NotWritable, match=words):
            check_writable(tmp_path)
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with pytest.raises(NotWritable, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "out")
    assert check_writable(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert list(tmp_path.iterdir()) == [tmp_path / "file"]  # the probe leaves nothing, creates no folder


def test_every_images_and_masks_option_says_what_it_takes():
    import argparse

    from segstudio.cli.main import build_parser

    def options(parser, path=""):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from options(sub, f"{path} {name}")
            else:
                yield path, action

    found = [(path, action) for path, action in options(build_parser())
             if {"--images", "--masks"} & set(action.option_strings)]
    assert {path for path, _ in found} >= {"", " inspect", " train", " predict"}
    assert all(action.help for _, action in found), [(p, a.option_strings) for p, a in found if not a.help]


def test_the_default_architecture_is_train_configs_in_help_and_printout(capsys):
    from segstudio.cli.main import build_parser
    from segstudio.cli.train import EventPrinter, train_config
    from segstudio.config import TrainConfig
    from segstudio.training import events as ev

    default = TrainConfig().arch.value
    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    assert f"default {default}" in next(a for a in train_parser._actions if "--arch" in a.option_strings).help
    args = parser.parse_args(["train", "--images", "i", "--masks", "m"])
    arch = train_config(args).arch.value
    assert arch == default
    EventPrinter(ev, arch)(ev.Started(device="cpu", device_name="CPU", mixed_precision=False, pretrained=False,
                                      groups=(), codes=("background", "x"), n_train=2, n_valid=1, epochs=1,
                                      iters_per_epoch=1, run_dir="r", lr_lo=1e-3, lr_hi=1e-3))
    assert f"training a {default} U-Net on CPU" in capsys.readouterr().out


def test_keep_checkpoint_reaches_the_config():
    from segstudio.cli.main import build_parser
    from segstudio.cli.train import train_config

    parse = build_parser().parse_args
    assert train_config(parse(["train", "--images", "i", "--keep-checkpoint"])).keep_checkpoint is True
    assert train_config(parse(["train", "--images", "i"])).keep_checkpoint is False


def test_inspect_says_why_it_exits_1(tmp_path, capsys):
    from segstudio.cli.main import main

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(images / f"{name}.png")
        Image.fromarray(np.eye(16, dtype=np.uint8)).save(masks / f"{name}_other.png")
    assert main(["inspect", "--images", str(images), "--masks", str(masks)]) == 1
    assert "error: no usable image/mask pairs among 2 image(s) and 2 mask(s)" in capsys.readouterr().err
    (masks / "a_other.png").rename(masks / "a.png")
    assert main(["inspect", "--images", str(images), "--masks", str(masks)]) == 1
    assert "error: cannot train: training needs at least 2" in capsys.readouterr().err
    (masks / "b_other.png").rename(masks / "b.png")
    assert main(["inspect", "--images", str(images), "--masks", str(masks)]) == 0
    assert "error" not in capsys.readouterr().err


def test_prediction_progress_says_which_file_and_the_time_left(capsys):
    from segstudio.cli.main import ProgressPrinter

    now = [0.0]
    show = ProgressPrinter(every=5, clock=lambda: now[0])
    for done, name, t in ((0, "a.png", 0), (1, "b.png", 2), (2, "c.png", 10), (3, "done", 14)):
        now[0] = t
        show(done, 3, name)
    assert capsys.readouterr().err.splitlines() == [
        "predicting 1 of 3: a.png (0:00 so far)",  # b.png: within 5 s of the last line
        "predicting 3 of 3: c.png (0:10 so far, about 0:05 left)",
        "predicted 3 of 3 in 0:14"]
