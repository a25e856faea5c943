"""Data-parallel training under torchrun: one process per GPU (NCCL), or per CPU share (gloo).

torch's DistributedDataParallel is driven directly, not through fastai's DistributedTrainer:
fastai 2.8 wraps the model with Hugging Face accelerate and reads `model.device`, which a
DynamicUnet lacks, so `learn.distrib_ctx()` fails under torchrun. What segstudio needs is small:
- every rank trains on its own shard of each epoch: the same shuffle everywhere, padded so that
  every rank has the same number of batches (CachedDL.shard);
- the model is wrapped per fit phase (DDP hooks only the parameters that train at wrap time);
- validation: each rank scores a contiguous part of the validation set with the unwrapped model,
  after rank 0's BatchNorm statistics are broadcast, and the loss and Dice counts are summed over
  ranks, so every rank sees the scores a single process gives the same model;
- a stop request or a NaN loss on any rank stops every rank at the same batch;
- only rank 0 creates the run folder, writes files and reports events.
The small reductions run on a gloo group (CPU tensors), so they never synchronise the GPU.
"""

from __future__ import annotations

import datetime
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from fastai.callback.core import Callback

from ..errors import SegstudioError
from ..runs import write_json

RECORD = "distributed.json"
TIMEOUT = datetime.timedelta(minutes=30)  # a collective waiting longer than this means a rank is gone


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a torchrun launch (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    restarts: int = 0  # torchrun's elastic restarts of this launch so far
    run_id: str = ""  # the rendezvous id, the same in every attempt of one launch

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def ranks_from_env(env=None) -> Ranks:
    """The Ranks torchrun describes in the environment (RANK, WORLD_SIZE, …)."""
    env = os.environ if env is None else env
    run_id = env.get("TORCHELASTIC_RUN_ID", "")
    return Ranks(rank=int(env.get("RANK", 0)), world=int(env.get("WORLD_SIZE", 1)),
                 local_rank=int(env.get("LOCAL_RANK", 0)), restarts=int(env.get("TORCHELASTIC_RESTART_COUNT", 0)),
                 run_id="" if run_id == "none" else run_id)  # "none": torchrun's default, the same for every launch


class Group:
    """The process group of a launch and the collectives segstudio uses (no-ops in one process)."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks
        self.small = None  # gloo group for CPU reductions

    def start(self, device: torch.device) -> torch.device:
        """Join the launch; returns this rank's device (its own GPU on a multi-GPU node)."""
        if not self.ranks.active:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.ranks.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            # torchrun's store outlives an elastic restart, and the previous attempt's addresses
            # are still in it (measured: a restarted gloo rank dialled its dead peer's port): the
            # keys of each attempt get their own prefix
            store, rank, world = next(dist.rendezvous("env://", timeout=TIMEOUT))
            store = dist.PrefixStore(f"segstudio/attempt-{self.ranks.restarts}", store)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=store, rank=rank,
                                    world_size=world, timeout=TIMEOUT)
        self.small = dist.new_group(backend="gloo", timeout=TIMEOUT) if device.type == "cuda" else dist.group.WORLD
        return device

    def finish(self) -> None:
        if self.ranks.active and dist.is_initialized():
            dist.destroy_process_group()

    def share(self, value):
        """Rank 0's `value` on every rank."""
        if not self.ranks.active:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.small)
        return box[0]

    def gather(self, value) -> list:
        """Every rank's `value`, in rank order."""
        if not self.ranks.active:
            return [value]
        out = [None] * self.ranks.world
        dist.all_gather_object(out, value, group=self.small)
        return out

    def most(self, code: int) -> int:
        """The largest `code` over the ranks."""
        if not self.ranks.active:
            return code
        t = torch.tensor([code], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.small)
        return int(t.item())

    def sum_(self, tensor: torch.Tensor) -> None:
        """Sum a CPU tensor over the ranks, in place."""
        if self.ranks.active:
            dist.all_reduce(tensor, group=self.small)

    @contextmanager
    def main_first(self):
        """Rank 0 runs the body first (it builds the slice cache), then the others (they open it)."""
        if self.ranks.active and not self.ranks.main:
            dist.barrier(group=self.small)
        yield
        if self.ranks.active and self.ranks.main:
            dist.barrier(group=self.small)

    def wrap(self, learn, device: torch.device) -> None:
        """Wrap the learner's model for the next fit (after freezing or unfreezing: DDP reduces
        the gradients of the parameters that train when it is made)."""
        if not self.ranks.active:
            return
        from torch.nn.parallel import DistributedDataParallel

        if learn.opt is None:
            learn.create_opt()  # fastai's splitter needs the plain model
        ids = [device.index] if device.type == "cuda" else None
        learn.model = DistributedDataParallel(unwrap(learn.model), device_ids=ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP wrapper (weights saved from it have no `module.` prefix)."""
    return getattr(model, "module", model)


MIN_BATCH = 2  # per process: BatchNorm needs two samples


def process_batch(bs: int, world: int) -> int:
    """Each process's share of the configured batch (nnU-Net's policy: the batch, the learning
    rates and the steps per epoch stay those of one process, so the run is the same run, faster)."""
    return max(MIN_BATCH, math.ceil(bs / world))


def shard_loaders(dls, ranks: Ranks, dice) -> None:
    """This rank's share of the training and validation loaders (and of each batch); the Dice
    metric is told where its validation part starts."""
    if not ranks.active:
        return
    for dl in (dls.train, dls.valid):
        dl.bs = process_batch(dl.bs, ranks.world)
    dls.train.shard(ranks.rank, ranks.world)
    start = dls.valid.shard(ranks.rank, ranks.world)
    if hasattr(dice, "offset"):
        dice.offset = start


class DistributedSync(Callback):
    """Makes the ranks of a launch agree: validation with one model and summed scores, and a
    check once per epoch that the parameters are the same on every rank.

    Order 45: after_validate runs before the Recorder (50) and the reporter (51) read the scores.
    """

    order = 45

    def __init__(self, group: Group, dice):
        self.group, self.dice = group, dice
        self.ddp = None

    def before_validate(self):
        model = self.learn.model
        if model is unwrap(model):
            return
        self.ddp = model
        for buf in model.module.buffers():  # BatchNorm statistics: rank 0's (each rank ran its own batches)
            dist.broadcast(buf, src=0)
        self.learn.model = model.module  # validation parts differ in length: no collective in their forwards

    def after_validate(self):
        if self.ddp is not None:
            self.learn.model, self.ddp = self.ddp, None
        loss = self.learn.recorder.loss
        totals = torch.tensor([float(loss.total), float(loss.count)], dtype=torch.float64)
        self.group.sum_(totals)
        loss.total, loss.count = totals[0].item(), int(totals[1].item())
        self.group.sum_(self.dice.inter)
        self.group.sum_(self.dice.total)

    def after_train(self):
        sums = parameter_digest(unwrap(self.learn.model))
        digests = self.group.gather(sums)
        if any(d != digests[0] for d in digests):
            raise SegstudioError(f"The ranks' models differ after epoch {self.epoch + 1} ({digests}): stop the "
                                 "launch and report it; the last checkpoint is kept.")


def parameter_digest(model: torch.nn.Module) -> tuple[float, float]:
    """Two numbers that differ when any parameter differs (sum and position-weighted sum)."""
    total, weighted = 0.0, 0.0
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            s = p.detach().double().sum().item()
            total += s
            weighted += (i + 1) * s + p.detach().double().flatten()[:: max(1, p.numel() // 97)].sum().item()
    return total, weighted


def launch_record(run_dir: Path, ranks: Ranks, bs: int, device: torch.device) -> dict:
    """The launch as the run record states it (distributed.json; rank 0 writes it): world size,
    backend, the configured batch and each process's share, the learning-rate policy, the
    rendezvous id (how an elastic restart finds the run)."""
    per = process_batch(bs, ranks.world)
    info = {"world_size": ranks.world, "backend": "nccl" if device.type == "cuda" else "gloo",
            "batch_per_process": per, "effective_batch": per * ranks.world, "configured_batch": bs,
            "lr_policy": "the configured learning rates and schedule, unscaled: the batch is split over the "
                         "processes, so an epoch has the steps of a single-process run",
            "run_id": ranks.run_id}
    if ranks.main:
        write_json(Path(run_dir) / RECORD, info)
    return info


def restarted_run(out_dir: str | Path, ranks: Ranks) -> str:
    """The run folder an elastic restart continues (the newest one this launch started that has a
    checkpoint, or that finished: its checkpoint is gone), or "" for a first attempt, or a launch
    without a rendezvous id to tell it by."""
    if not ranks.restarts or not ranks.run_id:
        return ""
    import json

    from ..runs import CHECKPOINT, default_runs_dir
    from .event_log import finished_event

    root = Path(out_dir) if out_dir else default_runs_dir()
    found = []
    for path in root.glob(f"*/{RECORD}"):
        try:
            same = json.loads(path.read_text(encoding="utf-8")).get("run_id") == ranks.run_id
        except (OSError, ValueError):
            continue
        if same and ((path.parent / CHECKPOINT).is_file() or finished_event(path.parent) is not None):
            found.append(path.parent)
    return str(max(found, key=lambda p: p.stat().st_mtime)) if found else ""
