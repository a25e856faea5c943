"""A job folder that trains a run on a cluster (Slurm + torchrun) or on one multi-GPU machine.

`write_job` writes config.json (data folders relative to a data root), manifest.json (every
dataset file with its size, to check the copy), job.slurm, run_local.sh and README.txt into a new
folder; `check_job` compares a copied dataset with the manifest (`segstudio job check`). A config
with folds (data.folds = K) makes a fold set: job.slurm is then a Slurm array of K tasks, task i
training fold i (`train --folds K --fold i`) into the one fold-set folder, and run_local.sh trains
the folds one after another.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .. import __version__
from ..config import TrainConfig
from ..errors import Cancelled, SegstudioError
from ..files import FILE_MODE, write_atomic
from .scripts import README, RUN_LOCAL, SLURM, render

MANIFEST = "manifest.json"
TIME_RE = re.compile(r"^(\d+-)?\d+(:\d\d){0,2}$")  # Slurm: MM, H:MM:SS, D-HH, D-HH:MM:SS...
RDZV_PORT = 29500


@dataclass
class JobFolder:
    """What `write_job` wrote."""

    path: Path
    n_files: int
    n_bytes: int
    nodes: int
    gpus_per_node: int
    folds: int = 0  # a fold set's K (an array job of K tasks); 0: one run
    fold_set: str = ""  # the fold-set folder's name under runs/

    @property
    def submit_command(self) -> str:
        return f"cd {shlex.quote(str(self.path))} && sbatch job.slurm"


@dataclass
class JobCheck:
    """A dataset compared with a job's manifest."""

    n_files: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[tuple[str, int, int]] = field(default_factory=list)  # (path, manifest size, size)
    extra: list[str] = field(default_factory=list)  # files the manifest does not list (a note)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def format(self, limit: int = 20) -> str:
        lines = [f"{self.n_files - len(self.missing) - len(self.changed)} of {self.n_files} file(s) as listed"]
        for title, items in (("missing", self.missing),
                             ("size differs", [f"{p}: {a} bytes in the manifest, {b} here" for p, a, b in self.changed]),
                             ("not in the manifest (training reads them too)", self.extra)):
            if items:
                lines.append(f"{title}: {len(items)} file(s)")
                lines += [f"  {item}" for item in items[:limit]] + ([f"  … and {len(items) - limit} more"]
                                                                     if len(items) > limit else [])
        return "\n".join(lines)


def slurm_time(hours: int) -> str:
    """A Slurm time limit for a number of hours ("04:00:00", "2-00:00:00")."""
    days, hours = divmod(int(hours), 24)
    return f"{days}-{hours:02d}:00:00" if days else f"{hours:02d}:00:00"


def default_data_root(images: str, masks: str = "") -> str:
    """The folder holding both data folders: their common parent, or the image folder's parent."""
    folders = [os.path.abspath(os.path.expanduser(f)) for f in (images, masks) if f]
    if not folders:
        return ""
    common = os.path.commonpath(folders)
    return os.path.dirname(common) if len(set(folders)) == 1 else common


def relative_path(folder: str | Path, root: str | Path) -> str | None:
    """`folder` relative to `root` as a POSIX path ("." for the root), or None when not inside it
    (compared as written, then with symbolic links resolved)."""
    folder, root = Path(folder).expanduser(), Path(root).expanduser()
    for a, b in ((Path(os.path.abspath(folder)), Path(os.path.abspath(root))), (folder.resolve(), root.resolve())):
        try:
            return a.relative_to(b).as_posix() or "."
        except ValueError:
            continue
    return None


def relative_to_root(folder: str | Path, root: Path, what: str) -> str:
    """`folder` relative to `root`; SegstudioError when it is not inside it."""
    rel = relative_path(folder, root)
    if rel is None:
        raise SegstudioError(f"The {what} {folder} is not inside the data root {root}: choose a data root "
                             "that holds all the data folders.")
    return rel


def job_config(config: TrainConfig, root: Path) -> tuple[TrainConfig, dict[str, str]]:
    """The config with its data folders relative to `root` and no output folder, and the
    folders to list in the manifest ({"images": rel, "masks": rel, "corrections": rel})."""
    from ..data.corrections import corrections_dir

    if not config.data.images:
        raise SegstudioError("The training settings have no image folder: choose the data first.")
    if config.init_from:
        raise SegstudioError("A run that continues from another run cannot be sent to a cluster (its parent "
                             "model stays on this machine): train it here, or start a new run.")
    if config.weights_path and not Path(config.weights_path).expanduser().is_file():
        raise SegstudioError(f"The encoder weights file {config.weights_path} does not exist.")
    folders = {"images": relative_to_root(config.data.images, root, "image folder")}
    if config.data.masks:
        folders["masks"] = relative_to_root(config.data.masks, root, "mask folder")
        fixes = corrections_dir(config.data.masks)
        if fixes.is_dir():  # the loaders use the corrected masks in place of the originals
            folders["corrections"] = relative_to_root(fixes, root, "corrections folder")
    data = replace(config.data, images=folders["images"], masks=folders.get("masks", ""), fold=0)
    return replace(config, data=data, out_dir="", init_from="", run_name=fold_set_name(config)), folders


def fold_set_name(config: TrainConfig) -> str:
    """The run name, or for a fold set its folder's name (as `train --folds` names it; a fold's
    own config.json, named fold_<i>, gives its fold set's default name)."""
    if config.data.folds < 2:
        return config.run_name
    return "" if re.fullmatch(r"fold_\d+", config.run_name) else config.run_name


def list_files(root: Path, folders: dict[str, str], should_stop: Callable[[], bool] | None = None,
               progress: Callable[[int, int, str], None] | None = None) -> list[dict]:
    """[{"path", "size"}] of the visible files under the folders (relative to root), sorted, each once."""
    sizes: dict[str, int] = {}
    for rel in dict.fromkeys(folders.values()):
        top = root / rel
        if not top.is_dir():
            raise SegstudioError(f"{top} is not a folder.")
        for dirpath, dirnames, filenames in os.walk(top):
            if should_stop and should_stop():
                raise Cancelled()
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                path = Path(dirpath) / name
                if not name.startswith(".") and path.is_file():
                    sizes[Path(os.path.relpath(path, root)).as_posix()] = path.stat().st_size
            if progress:
                progress(0, 0, f"Listing the dataset: {len(sizes)} files")
    return [{"path": p, "size": s} for p, s in sorted(sizes.items())]


def write_job(config: TrainConfig, data_root: str | Path, out_dir: str | Path, nodes: int = 1,
              gpus_per_node: int = 1, *, time_limit: str = "04:00:00", cpus_per_task: int = 0,
              job_name: str = "segstudio", progress: Callable[[int, int, str], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> JobFolder:
    """Write a job folder into `out_dir` (new or empty) that trains `config` with torchrun on
    `nodes` x `gpus_per_node` GPUs. `cpus_per_task` 0: 8 per GPU."""
    root, out = Path(data_root).expanduser(), Path(out_dir).expanduser()
    if nodes < 1 or gpus_per_node < 1:
        raise SegstudioError("A job needs at least one node and one GPU per node.")
    if not TIME_RE.match(time_limit.strip()):
        raise SegstudioError(f"{time_limit!r} is not a Slurm time limit (e.g. 04:00:00 or 2-00:00:00).")
    if not root.is_dir():
        raise SegstudioError(f"The data root {root} is not a folder.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SegstudioError(f"{out} already exists and is not an empty folder: choose a new job folder.")
    cfg, folders = job_config(config, root)
    k = cfg.data.folds if cfg.data.folds >= 2 else 0
    fold_set = (cfg.run_name or f"{k}_folds") if k else ""  # as `train --folds` names it
    if any(relative_path(out, root / rel) is not None for rel in folders.values()):
        raise SegstudioError(f"The job folder {out} is inside the dataset: choose another place.")
    manifest = make_manifest(root, folders, should_stop, progress)
    values = {"NODES": nodes, "GPUS": gpus_per_node, "CPUS": cpus_per_task or 8 * gpus_per_node,
              "TIME": time_limit.strip(), "NAME": re.sub(r"[^\w.-]+", "_", job_name) or "segstudio",
              "PORT": RDZV_PORT, "VERSION": __version__, "FILES": manifest["n_files"],
              "ROOT": one_line(manifest["data_root"]), "ROOT_Q": shlex.quote(manifest["data_root"]),
              "SIZE": f"{manifest['n_bytes'] / 1e6:.1f} MB", **script_values(k, fold_set)}
    weights = Path(cfg.weights_path).expanduser() if cfg.weights_path else None
    if weights is not None:  # a local encoder weights file travels with the job
        cfg.weights_path = f"encoder-weights{weights.suffix}"
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if weights is not None:
            written.append(out / cfg.weights_path)
            shutil.copyfile(weights, written[-1])
        for name, text in (("config.json", cfg.to_json()), (MANIFEST, json.dumps(manifest, indent=1)),
                           ("job.slurm", render(SLURM, values)), ("run_local.sh", render(RUN_LOCAL, values)),
                           ("README.txt", render(README, values))):
            written.append(out / name)
            write_atomic(written[-1], text)
        os.chmod(out / "run_local.sh", FILE_MODE | (FILE_MODE & 0o444) >> 2)  # executable where readable
    except BaseException:
        for path in written:  # only what this call wrote, in a folder that was new or empty
            path.unlink(missing_ok=True)
        if created:
            out.rmdir()
        raise
    return JobFolder(out, manifest["n_files"], manifest["n_bytes"], nodes, gpus_per_node, k, fold_set)


def script_values(k: int, name: str) -> dict[str, str]:
    """The scripts' fields that differ between one run and a fold set of `k` folds named `name`
    (an array job: task i trains fold i; concurrent tasks share the fold-set folder, which
    `train --fold` creates once, cli/folds.py)."""
    if not k:
        return {"WHAT": "one run", "WHAT_LOCAL": "one run", "PER_TASK": "", "ARRAY": "", "LOG": "%j",
                "WHERE": "", "FOLD_ARGS": "", "LOCAL_FOLD_ARGS": "", "OUTPUT": "the run folder goes to runs/"}
    name = one_line(name)
    return {"WHAT": f"the {k} folds of the fold set {name} as an array job (one task per fold)",
            "WHAT_LOCAL": f"the {k} folds of the fold set {name}, one after another", "PER_TASK": " per task",
            "ARRAY": f"#SBATCH --array=0-{k - 1}\n", "LOG": "%A_%a",
            "PORT": f"$(({RDZV_PORT} + SLURM_ARRAY_TASK_ID))",  # tasks sharing a node: one port each
            "WHERE": f" (the fold set $RUNS/{name}, one fold_<i> folder per task)",
            "FOLD_ARGS": f' --folds {k} --fold "$SLURM_ARRAY_TASK_ID"', "LOCAL_FOLD_ARGS": f" --folds {k}",
            "OUTPUT": f"the fold set goes to runs/{name}/ (fold_0 ... fold_{k - 1}, one per task; "
                      f"predict with its folds averaged: segstudio predict --model runs/{name})"}


def make_manifest(root: Path, folders: dict[str, str], should_stop: Callable[[], bool] | None = None,
                  progress: Callable[[int, int, str], None] | None = None) -> dict:
    """The dataset's files with their sizes (relative to `root`), counts, version and time."""
    files = list_files(root, folders, should_stop, progress)
    counts = {what: sum(rel == "." or f["path"].startswith(f"{rel}/") for f in files) for what, rel in folders.items()}
    return {"segstudio": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data_root": os.path.abspath(root), "folders": folders, "counts": counts,
            "n_files": len(files), "n_bytes": sum(f["size"] for f in files), "files": files}


def one_line(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


def check_job(job_dir: str | Path, data_root: str | Path) -> JobCheck:
    """Compare the dataset under `data_root` with the job's manifest."""
    path = Path(job_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        files, folders = manifest["files"], manifest["folders"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SegstudioError(f"{path} is not a segstudio job manifest ({exc}).") from exc
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise SegstudioError(f"The data root {root} is not a folder.")
    check = JobCheck(n_files=len(files))
    for entry in files:
        p = root / entry["path"]
        if not p.is_file():
            check.missing.append(entry["path"])
        elif p.stat().st_size != entry["size"]:
            check.changed.append((entry["path"], entry["size"], p.stat().st_size))
    listed = {entry["path"] for entry in files}
    present = [folders[k] for k in folders if (root / folders[k]).is_dir()]
    check.extra = [f["path"] for f in list_files(root, dict(enumerate(present))) if f["path"] not in listed]
    return check
