"""torch.distributed helpers: rank and world size, and an all-gather of 1-D tensors of different lengths."""

from __future__ import annotations

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, or (0, 1) when torch.distributed is not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_gather_1d(values: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's 1-D tensor in rank order; lengths may differ. Dtype is kept (int64 stays int64)."""
    _, world = rank_and_world()
    if world == 1:
        return values
    device = _collective_device()
    local = values.to(device)
    length = torch.tensor([local.numel()], dtype=torch.int64, device=device)
    lengths = [torch.zeros_like(length) for _ in range(world)]
    dist.all_gather(lengths, length)
    longest = int(max(t.item() for t in lengths))
    padded = torch.zeros(longest, dtype=local.dtype, device=device)
    padded[: local.numel()] = local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(n.item())] for g, n in zip(gathered, lengths)]).to(values.device)


def rank_offset(local_length: int) -> int:
    """Where this rank's values start in `all_gather_1d`'s result: the total length of the lower ranks'."""
    rank, world = rank_and_world()
    if world == 1:
        return 0
    device = _collective_device()
    length = torch.tensor([local_length], dtype=torch.int64, device=device)
    lengths = [torch.zeros_like(length) for _ in range(world)]
    dist.all_gather(lengths, length)
    return int(sum(t.item() for t in lengths[:rank]))
