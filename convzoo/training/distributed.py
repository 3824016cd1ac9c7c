"""The same loop, one process or many: under ``torchrun`` it joins the process group (nccl on GPUs,
gloo on CPUs) and wraps the model in DistributedDataParallel; alone, every helper is a no-op.

Ranks shard each global batch (``recipe.batch_size`` images), so the schedule, the learning rate and
the effective batch are those of a single-process run. Only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
import torch
import torch.distributed as dist
from torch import nn

from convzoo.errors import ConvzooError


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    device: torch.device
    owns_group: bool  # we started the process group, so we end it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else CPU; a bare ``cuda`` becomes this process's own GPU."""
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConvzooError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu (or auto)")
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def setup(device: str | torch.device = "auto") -> Context:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size == 1 and not dist.is_initialized():
        return Context(0, 1, resolved, owns_group=False)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo",
                                device_id=resolved if resolved.type == "cuda" else None)
    return Context(dist.get_rank(), dist.get_world_size(), resolved, owns_group=owns)


def teardown(context: Context) -> None:
    if context.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, context: Context) -> nn.Module:
    if not context.distributed:
        return model
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(tensor: torch.Tensor, context: Context) -> torch.Tensor:
    if context.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()

