"""Data-parallel training over several processes, launched through torchrun.

`cnnlab train ... --devices N` starts N copies of itself with `torch.distributed.run`; each
copy finds its rank in the environment torchrun sets, joins the process group (NCCL on GPUs,
gloo on CPUs), trains on its share of every global batch, and only rank 0 writes the run
directory. Gradients are averaged by DistributedDataParallel, so every rank holds the same
weights after every step.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from cnnlab.devices import resolve
from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes (a single process by default)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Return whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Return whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    def all_reduce(self, tensor: torch.Tensor, op: dist.ReduceOp.RedOpType = dist.ReduceOp.SUM) -> torch.Tensor:
        """Return `tensor` reduced over all ranks in place (itself when alone)."""
        if self.enabled:
            dist.all_reduce(tensor, op=op)
        return tensor

    def broadcast(self, value: object) -> object:
        """Return rank 0's `value` on every rank."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def local_device(device: str = "auto") -> torch.device:
    """Return this process's device for `device` (under torchrun: cuda:LOCAL_RANK or cpu) without joining a group."""
    return resolve(device)


def init_distributed(device: str = "auto") -> tuple[Distributed, torch.device]:
    """Return this process's Distributed (joining the process group under torchrun) and its device."""
    target = local_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed(), target
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if target.type == "cuda" else "gloo")
    if target.type == "cuda":
        torch.cuda.set_device(local_rank)
    return Distributed(rank, world_size, local_rank), target


def shutdown(info: Distributed) -> None:
    """Leave the process group (a no-op for a single process)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def launch(argv: Sequence[str], devices: int, device: str = "auto") -> int:
    """Run `cnnlab argv` in `devices` processes through torchrun; return its exit status."""
    # CPU processes (gloo) are not bounded by the GPUs: --device cpu on a one-GPU machine may run two.
    if local_device(device).type == "cuda" and devices > torch.cuda.device_count():
        raise CnnlabError(f"--devices {devices} but this machine has {torch.cuda.device_count()} GPUs: use at most that many")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}",
               "-m", "cnnlab", *argv]
    return subprocess.call(command)
