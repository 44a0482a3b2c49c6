"""Mining across torch.distributed ranks: each rank searches part of the corpus, top-k lists are merged exactly
(through `hardmine.distributed`'s one all-gather, on the device the group's backend needs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hardmine.distributed import all_gather_parts, all_gather_rows, collective_device
from hardmine.retrieval.topk import merge_topk


@dataclass(frozen=True)
class Shard:
    """This rank's part of the corpus: rows [start, stop) of the matrix it was given, which are global ids
    [offset, offset + stop - start) out of `global_size`."""

    world: int
    rank: int
    group: Any
    start: int
    stop: int
    offset: int
    global_size: int

    @property
    def distributed(self) -> bool:
        return self.world > 1


def corpus_shard(local_rows: int, corpus_sharded: bool, group: Any = None) -> Shard:
    """Work out this rank's part of the corpus.

    Without an initialised process group (or with one rank) the whole matrix is searched. Otherwise, with
    `corpus_sharded=False` every rank holds the full corpus and searches a contiguous 1/world of it; with
    `corpus_sharded=True` each rank holds its own shard and global ids follow rank order.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size(group) == 1:
        return Shard(1, 0, group, 0, local_rows, 0, local_rows)
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    sizes = gather_ints([local_rows], group)[:, 0]
    if corpus_sharded:
        offset = int(sizes[:rank].sum())
        return Shard(world, rank, group, 0, local_rows, offset, int(sizes.sum()))
    if (sizes != local_rows).any():
        raise ValueError(f"corpus_sharded=False needs the same corpus on every rank, got corpus sizes {sizes.tolist()}")
    start, stop = rank * local_rows // world, (rank + 1) * local_rows // world
    return Shard(world, rank, group, start, stop, start, local_rows)


def gather_ints(values: list[int], group: Any = None) -> np.ndarray:
    """All-gather a short list of ints from every rank: int64 [world, len(values)]."""
    return all_gather_rows(torch.tensor([values], dtype=torch.int64), group).numpy()


def merge_across_ranks(scores: np.ndarray, ids: np.ndarray, k: int, shard: Shard) -> tuple[np.ndarray, np.ndarray]:
    """Exact global top-k from every rank's top-k over its part: float32 [B, k] scores, int64 [B, k] global ids."""
    if not shard.distributed:
        return scores, ids
    all_s = all_gather_parts(torch.from_numpy(np.ascontiguousarray(scores)), shard.group)  # floats and int64
    all_i = all_gather_parts(torch.from_numpy(np.ascontiguousarray(ids)), shard.group)     # ids: separately
    return merge_topk([(a.numpy(), b.numpy()) for a, b in zip(all_s, all_i)], k)


def reduce_across_ranks(values: np.ndarray, op: str, shard: Shard) -> np.ndarray:
    """Element-wise "min" or "sum" of a float array over ranks."""
    if not shard.distributed:
        return values
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(collective_device(shard.group))
    dist.all_reduce(t, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.SUM, group=shard.group)
    return t.cpu().numpy()
