"""Data parallelism with DistributedDataParallel over torchrun ranks: gloo on CPU, nccl on CUDA."""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistributedContext:
    """This process's place among the data-parallel ranks."""

    rank: int
    """Global rank (0 in a single process)."""
    world_size: int
    """Number of ranks (1 in a single process)."""
    local_rank: int
    """Rank on this machine; selects the CUDA device."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(backend: str = "auto", device_type: str = "cpu", timeout_s: int = 600) -> DistributedContext:
    """Join the process group torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK.

    Without those variables (or with WORLD_SIZE=1) this is a single process and nothing is initialised.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world_size <= 1:
        return DistributedContext(0, 1, 0)
    if backend == "auto":
        backend = "nccl" if device_type == "cuda" else "gloo"
    # NOTE: the tests run gloo on CPU only; the nccl and CUDA path has not been run.
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        logger.info("process group initialised: backend %s, %d ranks", backend, world_size)
    return DistributedContext(rank, world_size, local_rank)


def apply_ddp(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """Wrap `model` so that backward() averages gradients over all ranks.

    DDP broadcasts rank 0's parameters at construction, so every rank starts from the same weights.
    """
    device_ids = [device.index] if device.type == "cuda" else None
    logger.info("applying DistributedDataParallel on %s", device)
    return DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(tensor: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum `tensor` over all ranks in place (a no-op in a single process) and return it."""
    if context.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj, context: DistributedContext) -> list:
    """Return the list of `obj` from every rank, in rank order."""
    if not context.enabled:
        return [obj]
    gathered = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(context: DistributedContext) -> None:
    """Wait for all ranks (a no-op in a single process)."""
    if context.enabled:
        dist.barrier()


def destroy(context: DistributedContext) -> None:
    """Leave the process group if this process joined one."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
