"""Several processes (GPUs or machines) through PyTorch's own engine: ``torch.distributed``,
launched by ``torchrun`` (or ``fakeseg train --nproc N``, which starts torchrun for you).

The :class:`~fakeseg.training.trainer.Trainer` reads the ranks from torchrun's environment,
joins the process group (NCCL on CUDA, gloo on CPU), wraps the model in
``DistributedDataParallel`` and lets rank 0 alone write. BatchNorm under DDP is a choice
(``batchnorm``): ``sync`` (SyncBatchNorm, CUDA only: statistics over the global batch),
``local`` (each rank normalises with its own batch, rank 0's running statistics are kept:
plain DDP), or ``frozen`` (running statistics fixed, affine parameters still trained, in one
process too: the update of ``world`` ranks × b then equals one process × world·b).
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fakeseg.errors import FakesegError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the run's processes (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def ranks_from_environment() -> Ranks:
    """The ranks torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``); one process of its own without them."""
    env = os.environ
    if int(env.get("WORLD_SIZE", "1")) <= 1:
        return Ranks()
    try:
        return Ranks(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", "0")),
                     int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])))
    except (KeyError, ValueError) as exc:
        raise FakesegError(f"WORLD_SIZE is set but {exc} is missing or not a number; start "
                           "several processes with torchrun or 'fakeseg train --nproc N'") from exc


def rank_device(device: torch.device, ranks: Ranks) -> torch.device:
    """Each rank of a CUDA run takes the GPU of its local rank."""
    if ranks.distributed and device.type == "cuda":
        return torch.device("cuda", ranks.local_rank)
    return device


def join(ranks: Ranks, device: torch.device) -> bool:
    """Join the process group (NCCL on CUDA, gloo otherwise); False when there is none to
    join or it was joined already."""
    if not ranks.distributed or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()


def broadcast(value: Any, ranks: Ranks) -> Any:
    """Rank 0's ``value`` on every rank (a picklable object)."""
    if not ranks.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _keep_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return module


def handle_batchnorm(net: nn.Module, mode: str, device: torch.device) -> nn.Module:
    """Apply the ``batchnorm`` choice of the module doc (``auto``: sync on CUDA, else local)."""
    if mode == "auto":
        mode = "sync" if device.type == "cuda" else "local"
    if mode == "sync":
        if device.type != "cuda":
            raise FakesegError("batchnorm=sync needs CUDA (SyncBatchNorm has no CPU kernel); "
                               "use --set batchnorm=local or batchnorm=frozen")
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    if mode == "frozen":
        for module in net.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
                module.train = types.MethodType(_keep_eval, module)  # type: ignore[method-assign]
    return net


def wrap(net: nn.Module, ranks: Ranks, device: torch.device, batchnorm: str) -> nn.Module:
    """``net`` as one replica of a DistributedDataParallel run (``net`` itself alone, where
    only ``frozen`` changes BatchNorm: one process's batch is the global batch)."""
    if not ranks.distributed:
        return handle_batchnorm(net, batchnorm, device) if batchnorm == "frozen" else net
    net = handle_batchnorm(net, batchnorm, device)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def unwrap(net: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (``net`` itself otherwise)."""
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m fakeseg ARGV`` in ``nproc`` processes on this machine through torchrun
    (``torch.distributed.run``, standalone rendezvous); its exit status."""
    from torch.distributed.run import get_args_parser, run

    if nproc < 1:
        raise FakesegError(f"--nproc {nproc}: give at least 1 process")
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc_per_node={nproc}", "--module", "fakeseg", *argv])
    try:
        run(args)
    except Exception as exc:  # torchrun's ChildFailedError: a rank failed, its log is above
        print(f"fakeseg: a training process failed ({type(exc).__name__}); see its error above",
              file=sys.stderr)
        return 1
    return 0
