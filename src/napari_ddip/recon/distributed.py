"""Data parallelism over slices with ``torch.distributed`` (one process per GPU or CPU).

Every rank holds the whole measurement and the whole current estimate; each computes the network
passes and data consistency of its contiguous share of slice batches, and the shares are summed
into every rank (the other entries are zero, so the sum is exact). D3IP's adaptation steps split
the ``K`` Monte Carlo slices over the ranks and sum the LoRA gradients. Every random draw is
keyed by its place in the run, not by the rank, so ``N`` ranks reproduce one process up to the
order of floating-point sums.

Launch with ``torchrun --nproc-per-node N -m napari_ddip reconstruct … --distributed``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

import torch

from napari_ddip.device import available_device

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    """This process's place among ``world`` ranks (``world == 1``: no communication)."""

    rank: int = 0
    world: int = 1

    def share(self, items: list[T]) -> list[T]:
        """This rank's contiguous share of ``items`` (sizes differ by at most one)."""
        base, extra = divmod(len(items), self.world)
        start = self.rank * base + min(self.rank, extra)
        return items[start : start + base + (self.rank < extra)]

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all ranks, in place (complex tensors as real pairs)."""
        if self.world > 1:
            import torch.distributed as dist

            view = torch.view_as_real(tensor) if tensor.is_complex() else tensor
            dist.all_reduce(view)
        return tensor


def current_group() -> Group:
    """The group of the initialised default process group, else a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size())
    return Group()


def init_from_environment(device: str) -> tuple[Group, torch.device]:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR``/``PORT``): NCCL with one GPU per local rank when ``device`` asks for CUDA
    (``auto`` with GPUs, or ``cuda``), else gloo on the CPU.

    Raises:
        ValueError: the environment does not describe a distributed launch, or ``device``
            is not there (no such device, or fewer GPUs than local ranks), before joining.
    """
    import torch.distributed as dist

    missing = [
        k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
    ]
    if missing:
        raise ValueError(
            f"--distributed needs a torchrun launch ({', '.join(missing)} not set): "
            "torchrun --nproc-per-node N -m napari_ddip reconstruct ... --distributed"
        )
    dev = available_device(device)
    cuda = dev.type == "cuda"
    if cuda:
        local_rank, count = int(os.environ.get("LOCAL_RANK", 0)), torch.cuda.device_count()
        if local_rank >= count:
            raise ValueError(
                f"--device {device}: local rank {local_rank} needs cuda:{local_rank}, and this "
                f"machine has {count} CUDA device(s): start at most {count} processes here"
            )
        dev = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if cuda else "gloo")
    return current_group(), dev


def leave_process_group() -> None:
    """Wait for every rank, then tear the process group down (no-op outside one).

    A rank that destroys its group while a peer still holds its gloo connections aborts that
    peer ("terminate called without an active exception"), so every rank first meets at a
    barrier.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
