"""Cluster job folders: what `write_job` writes, its scripts run with fake Slurm/torchrun commands,
`job check` against a changed dataset, and `train --data-root`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from segstudio.cli import main as cli
from segstudio.cli.train import train_config
from segstudio.cluster.job import check_job, default_data_root, slurm_time, write_job
from segstudio.config import DataConfig, TrainConfig
from segstudio.errors import SegstudioError

# Stand-ins for the cluster's commands: each records its arguments, srun runs what it is given.
FAKES = {"scontrol": 'echo node-a; echo node-b',
         "srun": 'echo "$@" > "$FAKE_LOG/srun.args"; exec "$@"',
         "torchrun": 'printf "%s\\n" "$@" > "$FAKE_LOG/torchrun.args"'}


@pytest.fixture
def dataset(sample_dirs, tmp_path) -> Path:
    """A copy of the sample dataset (images/, masks/) under tmp_path/"data", free to change."""
    root = tmp_path / "data"
    for folder in sample_dirs:
        shutil.copytree(folder, root / folder.name)
    return root


def config_for(root: Path, **kw) -> TrainConfig:
    return TrainConfig(data=DataConfig(images=str(root / "images"), masks=str(root / "masks")),
                       out_dir="/somewhere/runs", epochs=3, size=64, **kw)


def dataset_files(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


def run_script(job: Path, script: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """Run `script` with fake scontrol/srun/torchrun first on PATH and this venv's python next."""
    fakes, log = tmp_path / "fakes", tmp_path / "fake-log"
    fakes.mkdir(exist_ok=True)
    log.mkdir(exist_ok=True)
    for name, body in FAKES.items():
        (fakes / name).write_text(f"#!/bin/bash\n{body}\n")
        (fakes / name).chmod(0o755)
    python_dir = tmp_path / "python"  # `python` is this interpreter, whatever the venv calls it
    python_dir.mkdir(exist_ok=True)
    if not (python_dir / "python").exists():
        (python_dir / "python").symlink_to(sys.executable)
    path = os.pathsep.join([str(fakes), str(Path(sys.executable).parent), str(python_dir), os.environ["PATH"]])
    return subprocess.run(["bash", script], cwd=job, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": path, "FAKE_LOG": str(log), **env})


def test_export_writes_relative_config_manifest_and_scripts(dataset, tmp_path):
    job = write_job(config_for(dataset), dataset, tmp_path / "job", nodes=2, gpus_per_node=4,
                    time_limit=slurm_time(30), job_name="liver seg")
    out = tmp_path / "job"
    assert job.path == out and sorted(p.name for p in out.iterdir()) == [
        "README.txt", "config.json", "job.slurm", "manifest.json", "run_local.sh"]
    cfg = TrainConfig.load(out / "config.json")
    assert (cfg.data.images, cfg.data.masks, cfg.out_dir) == ("images", "masks", "")
    assert (cfg.epochs, cfg.size) == (3, 64)  # the training settings travel unchanged

    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"]: f["size"] for f in manifest["files"]}
    assert listed == dataset_files(dataset) and len(listed) > 40
    assert manifest["n_files"] == len(listed) == job.n_files
    assert manifest["counts"]["images"] == 40 and manifest["folders"] == {"images": "images", "masks": "masks"}
    assert manifest["segstudio"] and manifest["created"]

    slurm = (out / "job.slurm").read_text()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=32", "#SBATCH --time=1-06:00:00", "#SBATCH --job-name=liver_seg",
                 "#SBATCH --output=liver_seg-%j.log"):
        assert line in slurm.splitlines()
    assert slurm.index("job check") < slurm.index("srun torchrun")
    local = out / "run_local.sh"
    assert "torchrun --standalone --nproc_per_node 4" in local.read_text()
    assert os.access(local, os.X_OK)
    for script in ("job.slurm", "run_local.sh"):
        assert subprocess.run(["bash", "-n", str(out / script)], capture_output=True).returncode == 0


@pytest.mark.slow
def test_slurm_script_checks_the_data_then_runs_torchrun(dataset, tmp_path, monkeypatch):
    """job.slurm under fake srun/scontrol/torchrun: torchrun's own parser and then segstudio's
    accept the arguments, and they train on the copied data."""
    from torch.distributed.run import parse_args

    out = tmp_path / "job"
    write_job(config_for(dataset), dataset, out, nodes=2, gpus_per_node=4)
    slurm_env = {"SLURM_JOB_NODELIST": "node-[a-b]", "SLURM_NNODES": "2", "SLURM_JOB_ID": "777",
                 "DATA_ROOT": str(dataset)}
    done = run_script(out, "job.slurm", tmp_path, **slurm_env)
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "fake-log" / "torchrun.args").read_text().splitlines()
    targs = parse_args(argv)
    assert (targs.nnodes, targs.nproc_per_node, targs.rdzv_backend) == ("2", "4", "c10d")
    assert (targs.rdzv_endpoint, targs.rdzv_id, targs.max_restarts) == ("node-a:29500", "777", 3)
    assert targs.module and targs.training_script == "segstudio"
    args = cli.build_parser().parse_args(targs.training_script_args)
    assert args.command == "train" and args.out == str(out / "runs")
    monkeypatch.chdir(out)  # where torchrun runs
    cfg = train_config(args)
    assert (cfg.data.images, cfg.data.masks) == (str(dataset / "images"), str(dataset / "masks"))
    assert cfg.out_dir == str(out / "runs") and cfg.epochs == 3

    (dataset / "images" / "phantom_01_000.dcm").unlink()  # a broken copy: no training
    (tmp_path / "fake-log" / "torchrun.args").unlink()
    broken = run_script(out, "job.slurm", tmp_path, **slurm_env)
    assert broken.returncode == 1 and "phantom_01_000.dcm" in broken.stdout + broken.stderr
    assert not (tmp_path / "fake-log" / "torchrun.args").exists()


@pytest.mark.slow
def test_run_local_runs_standalone_torchrun(dataset, tmp_path):
    out = tmp_path / "job"
    write_job(config_for(dataset), dataset, out, gpus_per_node=2)
    done = run_script(out, "run_local.sh", tmp_path)  # the data root where it was written
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "fake-log" / "torchrun.args").read_text().splitlines()
    assert argv[:3] == ["--standalone", "--nproc_per_node", "2"]
    assert argv[3:] == ["-m", "segstudio", "train", "--config", "config.json", "--data-root", str(dataset),
                        "--out", str(out / "runs")]


def test_refuses_folders_outside_the_root_and_a_used_job_folder(dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(SegstudioError, match="not inside the data root"):
        write_job(config_for(dataset), elsewhere, tmp_path / "job")
    assert not (tmp_path / "job").exists()
    cfg = config_for(dataset)
    cfg.data.masks = str(tmp_path / "other-masks")
    with pytest.raises(SegstudioError, match="mask folder"):
        write_job(cfg, dataset, tmp_path / "job")

    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    with pytest.raises(SegstudioError, match="not an empty folder"):
        write_job(config_for(dataset), dataset, used)
    assert [p.name for p in used.iterdir()] == ["notes.txt"] and (used / "notes.txt").read_text() == "mine"
    with pytest.raises(SegstudioError, match="inside the dataset"):
        write_job(config_for(dataset), dataset, dataset / "images" / "job")
    with pytest.raises(SegstudioError, match="continues from another run"):
        write_job(config_for(dataset, init_from=str(tmp_path / "a-run")), dataset, tmp_path / "job")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_job(config_for(dataset), dataset, empty).path == empty


def test_corrections_and_weights_travel_with_the_job(dataset, tmp_path):
    fixes = dataset / "masks-corrections"  # the loaders read these in place of the masks
    fixes.mkdir()
    (fixes / "phantom_01_000.png").write_bytes(b"corrected")
    weights = tmp_path / "resnet34-local.pth"
    weights.write_bytes(b"weights")
    out = tmp_path / "job"
    write_job(config_for(dataset, weights_path=str(weights)), dataset, out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["folders"]["corrections"] == "masks-corrections"
    assert {"path": "masks-corrections/phantom_01_000.png", "size": 9} in manifest["files"]
    cfg = TrainConfig.load(out / "config.json")
    assert cfg.weights_path == "encoder-weights.pth" and (out / cfg.weights_path).read_bytes() == b"weights"


def test_job_check_finds_missing_and_changed_files(dataset, tmp_path, capsys):
    out = tmp_path / "job"
    write_job(config_for(dataset), dataset, out)
    assert cli.main(["job", "check", "--job", str(out), "--data-root", str(dataset)]) == 0
    assert "dataset matches" in capsys.readouterr().out

    (dataset / "images" / "phantom_02_010.dcm").unlink()
    assert (dataset / "masks" / "phantom_04_020.png").is_file()
    with open(dataset / "masks" / "phantom_04_020.png", "ab") as f:
        f.write(b"\0" * 7)
    (dataset / "images" / "extra.dcm").write_bytes(b"new")
    check = check_job(out, dataset)
    assert not check.ok and check.missing == ["images/phantom_02_010.dcm"]
    [(path, listed, now)] = check.changed
    assert path == "masks/phantom_04_020.png" and now == listed + 7
    assert check.extra == ["images/extra.dcm"]
    assert cli.main(["job", "check", "--job", str(out), "--data-root", str(dataset)]) == 1
    captured = capsys.readouterr()
    assert "phantom_02_010.dcm" in captured.out and "phantom_04_020.png" in captured.out
    assert "differs" in captured.err
    assert cli.main(["job", "check", "--job", str(tmp_path), "--data-root", str(dataset)]) == 2  # no manifest


def test_job_export_command(dataset, tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(config_for(dataset).to_json())
    argv = ["job", "export", "--config", str(config), "--data-root", str(dataset), "--out", str(tmp_path / "job"),
            "--nodes", "3", "--gpus", "8", "--time", "12:00:00"]
    assert cli.main(argv) == 0
    assert "sbatch job.slurm" in capsys.readouterr().out
    slurm = (tmp_path / "job" / "job.slurm").read_text()
    assert "#SBATCH --nodes=3" in slurm and "--nproc_per_node 8" in slurm and "#SBATCH --time=12:00:00" in slurm
    assert cli.main(argv) == 2  # the folder is in use now
    assert "not an empty folder" in capsys.readouterr().err


def test_train_data_root_resolves_relative_folders_only(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(TrainConfig(data=DataConfig(images="scans/images", masks="scans/masks")).to_json())
    parse = cli.build_parser().parse_args
    cfg = train_config(parse(["train", "--config", str(config), "--data-root", str(tmp_path / "root")]))
    assert (cfg.data.images, cfg.data.masks) == (str(tmp_path / "root/scans/images"), str(tmp_path / "root/scans/masks"))
    assert train_config(parse(["train", "--config", str(config)])).data.images == "scans/images"
    config.write_text(TrainConfig(data=DataConfig(images=str(tmp_path / "abs"), masks="")).to_json())
    cfg = train_config(parse(["train", "--config", str(config), "--data-root", "/elsewhere"]))
    assert (cfg.data.images, cfg.data.masks) == (str(tmp_path / "abs"), "")


def test_default_data_root_and_time_limits(tmp_path):
    assert default_data_root(str(tmp_path / "d/images"), str(tmp_path / "d/masks")) == str(tmp_path / "d")
    assert default_data_root(str(tmp_path / "d/scans")) == str(tmp_path / "d")
    assert default_data_root("") == ""
    assert (slurm_time(4), slurm_time(24), slurm_time(50)) == ("04:00:00", "1-00:00:00", "2-02:00:00")
    with pytest.raises(SegstudioError, match="time limit"):
        write_job(TrainConfig(data=DataConfig(images=str(tmp_path))), tmp_path, tmp_path / "job",
                  time_limit="four hours")


def test_job_export_data_root_defaults_to_the_data_folders_parent(dataset, tmp_path, capsys):
    """The README's promise: without --data-root, the common parent of the image and mask folders."""
    config = tmp_path / "config.json"
    config.write_text(config_for(dataset).to_json())
    assert cli.main(["job", "export", "--config", str(config), "--out", str(tmp_path / "job")]) == 0
    assert f"under {dataset}" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "job" / "manifest.json").read_text())
    assert manifest["data_root"] == str(dataset) and manifest["folders"] == {"images": "images", "masks": "masks"}


@pytest.mark.slow
def test_fold_set_exports_an_array_job_whose_tasks_share_one_fold_set(dataset, tmp_path, monkeypatch, capsys):
    """A config with folds: job.slurm is a Slurm array, task i trains fold i into runs/<name>; two
    tasks run here (the training faked): the first to start writes folds.json, and its failing fold
    does not remove the folder another task is training in."""
    from torch.distributed.run import parse_args

    import segstudio.cli.train as cli_train

    config = tmp_path / "config.json"
    config.write_text(config_for(dataset).to_json())
    out = tmp_path / "job"
    assert cli.main(["job", "export", "--config", str(config), "--out", str(out), "--folds", "3", "--gpus", "2"]) == 0
    printed = capsys.readouterr().out
    assert "array job of 3 tasks" in printed and f"cd {out} && sbatch job.slurm" in printed  # submit_command
    slurm = (out / "job.slurm").read_text()
    for line in ("#SBATCH --array=0-2", "#SBATCH --output=segstudio-%A_%a.log", "#SBATCH --gpus-per-node=2"):
        assert line in slurm.splitlines()
    assert slurm.rstrip().endswith('--folds 3 --fold "$SLURM_ARRAY_TASK_ID"')
    assert "runs/3_folds" in (out / "README.txt").read_text()
    assert TrainConfig.load(out / "config.json").data.folds == 3
    for script in ("job.slurm", "run_local.sh"):
        assert subprocess.run(["bash", "-n", str(out / script)], capture_output=True).returncode == 0

    trained = []

    def fake_training(args, cfg, resume):  # task 0 fails while task 1 has just started fold 1
        trained.append((cfg.data.folds, cfg.data.fold, cfg.out_dir, cfg.run_name))
        if cfg.data.fold == 1:
            (Path(cfg.out_dir) / "fold_1").mkdir()
            return 0
        return 1

    monkeypatch.setattr(cli_train, "run_training", fake_training)
    monkeypatch.chdir(out)  # where the tasks run
    runs = out / "runs" / "3_folds"
    for task in ("0", "1"):
        env = {"SLURM_JOB_NODELIST": "node-a", "SLURM_NNODES": "1", "SLURM_JOB_ID": f"90{task}",
               "SLURM_ARRAY_TASK_ID": task, "DATA_ROOT": str(dataset)}
        assert run_script(out, "job.slurm", tmp_path, **env).returncode == 0
        targs = parse_args((tmp_path / "fake-log" / "torchrun.args").read_text().splitlines())
        assert targs.nproc_per_node == "2" and targs.rdzv_id == f"90{task}"
        assert targs.rdzv_endpoint == f"node-a:2950{task}"  # tasks on one node: a port each
        status = cli.main(targs.training_script_args)
        assert status == (1 if task == "0" else 0)
        assert json.loads((runs / "folds.json").read_text())["folds"] == 3
    assert trained == [(3, 0, str(runs), "fold_0"), (3, 1, str(runs), "fold_1")]
    assert (runs / "fold_1").is_dir() and TrainConfig.load(runs / "config.json").data.folds == 3

    local = (out / "run_local.sh").read_text()  # one machine: the folds one after another
    assert local.rstrip().endswith('--out "$RUNS" --folds 3')


def test_a_fold_config_exports_its_fold_set(dataset, tmp_path):
    """A fold's own config.json (run fold_2 inside its fold set) gives the fold set's job, not fold 2's."""
    cfg = config_for(dataset)
    cfg.data.folds, cfg.data.fold, cfg.run_name = 4, 2, "fold_2"
    job = write_job(cfg, dataset, tmp_path / "job")
    assert (job.folds, job.fold_set) == (4, "4_folds")
    written = TrainConfig.load(tmp_path / "job" / "config.json")
    assert (written.data.folds, written.data.fold, written.run_name) == (4, 0, "")
    cfg.run_name = "liver cv"
    assert write_job(cfg, dataset, tmp_path / "job2").fold_set == "liver cv"
    assert "#SBATCH --array" not in (write_job(config_for(dataset), dataset, tmp_path / "one") .path / "job.slurm").read_text()


def test_a_fold_task_joins_only_a_fold_set_with_its_split(dataset, tmp_path, monkeypatch, capsys):
    """`train --folds K --fold I` never writes into a run folder of the same name, nor trains a fold
    of a fold set split with another seed (its validation images would be others' training images)."""
    import segstudio.cli.train as cli_train

    monkeypatch.setattr(cli_train, "run_training", lambda args, cfg, resume: 0)
    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "config.json").write_text("a single run's settings")
    base = ["train", "--images", str(dataset / "images"), "--masks", str(dataset / "masks"), "--out",
            str(tmp_path / "runs"), "--folds", "3", "--fold", "1"]
    assert cli.main([*base, "--name", "mine"]) == 1
    assert "not a fold set" in capsys.readouterr().err
    assert (run / "config.json").read_text() == "a single run's settings" and not (run / "folds.json").exists()

    assert cli.main([*base, "--name", "cv"]) == 0
    config = tmp_path / "seed7.json"
    cfg = config_for(dataset)
    cfg.data.split_seed = 7
    config.write_text(cfg.to_json())
    assert cli.main([*base, "--name", "cv", "--config", str(config)]) == 1
    assert "seed 42, not 7" in capsys.readouterr().err


def test_write_new_writes_once(tmp_path, monkeypatch):
    from segstudio.files import write_new

    path = tmp_path / "folds.json"
    assert write_new(path, "first") and not write_new(path, "second")
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["folds.json"]

    def no_links(src, dst):
        raise PermissionError("no hard links here")

    monkeypatch.setattr(os, "link", no_links)  # FAT and some shares: created exclusively
    other = tmp_path / "other.json"
    assert write_new(other, "a") and not write_new(other, "b") and other.read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folds.json", "other.json"]
