"""`segstudio train` under torchrun, instrumented for test_distributed: after every optimizer
step the ranks' parameter digests are gathered (rank 0 appends them to $DDP_STEPS, one JSON line
per step), and with $DDP_KILL_AT=E rank 1 kills itself (SIGKILL) in epoch E of the first attempt,
once every rank has entered that epoch (so rank 0 has written the checkpoint before it)."""

import json
import os
import signal
import sys

from segstudio.cli.main import main
from segstudio.training.distributed import DistributedSync, parameter_digest, unwrap


def after_step(self):
    digests = self.group.gather(parameter_digest(unwrap(self.learn.model)))
    if self.group.ranks.main:
        with open(os.environ["DDP_STEPS"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"restart": self.group.ranks.restarts, "epoch": self.epoch, "iter": self.iter,
                                "digests": digests}) + "\n")


def before_batch(self):  # order 45: after StopGuard's check (-10), which every rank passes together
    kill_at = int(os.environ.get("DDP_KILL_AT", -1))
    ranks = self.group.ranks
    if ranks.rank == 1 and ranks.restarts == 0 and self.training and self.epoch == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


DistributedSync.after_step = after_step
DistributedSync.before_batch = before_batch

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
