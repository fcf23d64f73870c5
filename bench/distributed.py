"""One run over several processes: data parallelism with gradients averaged over ranks (what DDP does).

A method's step calls its own submodules (student, converters, members), not one wrapped module, so the harness
does DistributedDataParallel's work itself on the phase's parameters: after ``backward`` every rank's gradients are
all-reduced and averaged (flattened into one bucket per dtype), and after each optimiser step the method's buffers
(BatchNorm statistics, a method's decisions) are broadcast from rank 0, as DDP's ``broadcast_buffers`` does.

The global batch is the budget's ``batch_size`` at any world size: every rank draws and augments the whole global
batch from the same generator (so the sample order and augmentation are those of one process) and trains on its
contiguous share. What changes with the world size: BatchNorm normalises over a rank's share, not the global batch,
and the float sums run in another order (a rank's mean, then the mean over ranks). gloo on CPU, NCCL on CUDA.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """This process's place in a run: rank ``rank`` of ``size`` (``size`` 1: no process group)."""
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous part of a global batch of ``n`` (``n`` divisible by the world size)."""
        per = n // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if self.size == 1:
            return
        by_dtype: dict = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat)
            flat /= self.size
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()

    def broadcast_buffers(self, module: nn.Module) -> None:
        if self.size == 1:
            return
        for buf in module.buffers():
            dist.broadcast(buf, 0)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of each value (e.g. an epoch's summed losses); identical on every rank."""
        if self.size == 1 or not values:
            return values
        keys = sorted(values)
        t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        return {k: v / self.size for k, v in zip(keys, t.tolist())}

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any (e.g. "stop at this safe point")."""
        if self.size == 1:
            return flag
        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


SINGLE = World()


def init(rank: int, size: int, init_method: str, device: torch.device) -> World:
    """Join the run's process group (gloo on CPU, NCCL on CUDA); returns this rank's :class:`World`."""
    if size == 1:
        return SINGLE
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=size)
    return World(rank, size)


def shutdown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device, world: World) -> torch.device:
    """The device this rank trains on: one GPU per rank (local rank on the node), the CPU otherwise."""
    if device.type != "cuda" or world.size == 1:
        return device
    local = int(os.environ.get("SLURM_LOCALID", os.environ.get("LOCAL_RANK", world.rank)))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)
