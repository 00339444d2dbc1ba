"""Process-group setup under ``torchrun`` and index sharding without padding for evaluation."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "DistInfo",
    "cleanup_distributed",
    "resolve_device",
    "setup_distributed",
    "shard_indices",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` if CUDA is available, else CPU; otherwise ``spec``."""
    if spec == "auto":
        return (
            torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
        )
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} was requested but CUDA is not available here")
    if device.type == "cuda" and ":" not in spec:
        device = torch.device("cuda", local_rank)  # plain "cuda": this process's GPU
    return device


def setup_distributed(device_spec: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    ``WORLD_SIZE > 1`` starts ``torch.distributed`` with NCCL on CUDA and gloo
    on CPU; otherwise the run is a single process.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, device)


def cleanup_distributed() -> None:
    """Leave the process group (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard_indices(indices: Tensor, rank: int, world_size: int, pad: bool) -> Tensor:
    """This rank's share of ``indices``: every ``world_size``-th from ``rank``.

    With ``pad=False`` (evaluation) each sample is seen by exactly one rank, so
    summed per-class counts are exact; shares may differ by one. With
    ``pad=True`` (training) the list is first extended by wrapping around so
    that every rank gets the same number of batches, as DDP requires (more than
    once when there are fewer indices than the padding needs).
    """
    if world_size == 1:
        return indices
    n = len(indices)
    if pad and n % world_size:
        total = -(-n // world_size) * world_size  # (N,) -> (ceil(N / W) * W,)
        indices = indices.repeat(-(-total // n))[:total]
    return indices[rank::world_size]
