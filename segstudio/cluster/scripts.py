"""The scripts and README of a cluster job folder (see job.write_job), as templates."""

from __future__ import annotations

import re
from typing import Any

SLURM = """\
#!/bin/bash
#SBATCH --job-name=@NAME@
#SBATCH --nodes=@NODES@
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=@GPUS@
#SBATCH --cpus-per-task=@CPUS@
#SBATCH --time=@TIME@
@ARRAY@#SBATCH --output=@NAME@-@LOG@.log
# Many clusters also want a partition or an account: remove one '#' to use these.
##SBATCH --partition=gpu
##SBATCH --account=my-project
#
# segstudio @VERSION@: trains @WHAT@ on @NODES@ node(s) x @GPUS@ GPU(s)@PER_TASK@, one torchrun per node.
# Submit from this folder: sbatch job.slurm

# The dataset: a copy of @ROOT@ (@FILES@ files, @SIZE@), checked against manifest.json first.
DATA_ROOT="${DATA_ROOT:-$PWD/data}"
# Where the run folder is written@WHERE@.
RUNS="${RUNS:-$PWD/runs}"
# An environment with segstudio installed, e.g.:
# module load cuda; source ~/venvs/segstudio/bin/activate
# Pretrained encoder weights are downloaded on first use; offline compute nodes need them cached:
# export TORCH_HOME=~/.cache/torch

set -euo pipefail
if [ ! -f config.json ] || [ ! -f manifest.json ]; then
    echo "Submit from the job folder: cd into it, then sbatch job.slurm" >&2
    exit 1
fi
python -m segstudio job check --job . --data-root "$DATA_ROOT" || {
    echo "The dataset in $DATA_ROOT differs from manifest.json: not training." >&2
    exit 1
}

MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)  # reads all: no SIGPIPE under pipefail
srun torchrun --nnodes "$SLURM_NNODES" --nproc_per_node @GPUS@ \\
    --rdzv_backend c10d --rdzv_endpoint "$MASTER:@PORT@" --rdzv_id "$SLURM_JOB_ID" --max-restarts 3 \\
    -m segstudio train --config config.json --data-root "$DATA_ROOT" --out "$RUNS"@FOLD_ARGS@
"""

RUN_LOCAL = """\
#!/bin/bash
# segstudio @VERSION@: trains @WHAT_LOCAL@ on this machine's GPUs (@GPUS@ processes): ./run_local.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# The dataset (@FILES@ files, @SIZE@): where it was when this job was written, or set DATA_ROOT
# to a copy; it is checked against manifest.json first. Relative paths are from this folder.
DEFAULT_DATA_ROOT=@ROOT_Q@
DATA_ROOT="${DATA_ROOT:-$DEFAULT_DATA_ROOT}"
# Where the run folder is written@WHERE@.
RUNS="${RUNS:-$PWD/runs}"

python -m segstudio job check --job . --data-root "$DATA_ROOT" || {
    echo "The dataset in $DATA_ROOT differs from manifest.json: not training." >&2
    exit 1
}
torchrun --standalone --nproc_per_node @GPUS@ \\
    -m segstudio train --config config.json --data-root "$DATA_ROOT" --out "$RUNS"@LOCAL_FOLD_ARGS@
"""

README = """\
segstudio @VERSION@ training job: @WHAT@, @NODES@ node(s) x @GPUS@ GPU(s)@PER_TASK@; the dataset is @FILES@ files (@SIZE@) from @ROOT@.
1. Copy this folder to the cluster, and the dataset into data/ inside it (rsync -a @ROOT_Q@/ data/), or set DATA_ROOT in job.slurm.
2. In a shell with segstudio installed: cd into this folder and run `sbatch job.slurm` (on one multi-GPU machine: ./run_local.sh).
3. Both first check the dataset against manifest.json (segstudio job check --job . --data-root data); @OUTPUT@.
"""


def render(template: str, values: dict[str, Any]) -> str:
    """Fill the @NAME@ fields of `template` (one pass: values are never read as fields)."""
    return re.sub(r"@([A-Z_]+)@", lambda m: str(values[m.group(1)]), template)
