"""`segstudio job export|check`: write a cluster job folder, check a copied dataset against it."""

from __future__ import annotations

import argparse
import sys


def add_parser(subparsers) -> None:
    job = subparsers.add_parser("job", help="write a job folder that trains on a cluster (Slurm + torchrun), "
                                            "or check a copied dataset against one")
    sub = job.add_subparsers(dest="job_command", required=True)
    ex = sub.add_parser("export", help="write a job folder: config, dataset manifest, job.slurm, run_local.sh")
    ex.add_argument("--config", required=True, help="a saved TrainConfig JSON (e.g. a run's config.json)")
    ex.add_argument("--data-root", help="the folder holding the config's data folders (default: the common "
                                        "parent of the image and mask folders)")
    ex.add_argument("--out", required=True, metavar="JOB_DIR", help="the job folder to write (new or empty)")
    ex.add_argument("--nodes", type=_positive, default=1)
    ex.add_argument("--gpus", type=_positive, default=1, help="GPUs per node")
    ex.add_argument("--time", default="04:00:00", help="Slurm time limit (e.g. 04:00:00 or 2-00:00:00)")
    ex.add_argument("--cpus", type=_positive, help="CPUs per node (default: 8 per GPU)")
    ex.add_argument("--name", default="segstudio", help="Slurm job name")
    ex.add_argument("--folds", type=_positive, metavar="K",
                    help="train a fold set of K folds as a Slurm array job, one task per fold (default: the "
                         "config's folds, e.g. a fold set's config.json; 1: one run)")
    ch = sub.add_parser("check", help="compare a dataset with a job folder's manifest.json")
    ch.add_argument("--job", required=True, metavar="JOB_DIR")
    ch.add_argument("--data-root", required=True)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args) -> int:
    from ..cluster.job import check_job, default_data_root, write_job
    from ..config import TrainConfig
    from ..errors import SegstudioError

    try:
        if args.job_command == "check":
            check = check_job(args.job, args.data_root)
            print(check.format())
            print("dataset matches the manifest" if check.ok else "error: the dataset differs from the manifest",
                  file=sys.stdout if check.ok else sys.stderr)
            return 0 if check.ok else 1
        config = TrainConfig.load(args.config)
        if args.folds is not None:
            config.data.folds = args.folds if args.folds >= 2 else 0
        root = args.data_root or default_data_root(config.data.images, config.data.masks)
        job = write_job(config, root, args.out, args.nodes, args.gpus, time_limit=args.time,
                        cpus_per_task=args.cpus or 0, job_name=args.name)
    except (OSError, ValueError, SegstudioError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    what = (f"an array job of {job.folds} tasks, one per fold of the fold set runs/{job.fold_set}, each on "
            if job.folds else "")
    print(f"wrote {job.path}: {job.n_files} dataset files under {root} in the manifest, {what}{job.nodes} node(s) x "
          f"{job.gpus_per_node} GPU(s)\ncopy it and the dataset to the cluster (see README.txt there), then submit "
          f"it there: {job.submit_command}")
    return 0
