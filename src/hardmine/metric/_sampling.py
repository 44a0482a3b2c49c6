"""Uniform sampling of k distinct ids out of a range too large to enumerate."""

from __future__ import annotations

import torch


def sample_ids(total: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """k distinct ids drawn uniformly from range(total) (all of them when k >= total), sorted, int64 on CPU.

    Memory O(k): draws with replacement until k distinct ids are seen, then keeps a uniform k-subset of those
    (every subset of the same size is equally likely to be the set seen, so the result is uniform).
    """
    if k >= total:
        return torch.arange(total)
    if 2 * k >= total:
        return torch.randperm(total, generator=generator)[:k].sort().values
    seen = torch.empty(0, dtype=torch.int64)
    while seen.numel() < k:
        draw = torch.randint(total, (2 * (k - seen.numel()) + 16,), generator=generator)
        seen = torch.unique(torch.cat([seen, draw]))
    return seen[torch.randperm(seen.numel(), generator=generator)[:k]].sort().values
