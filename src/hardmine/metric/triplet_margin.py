"""Triplets by margin (PML's TripletMarginMiner: all / hard / semihard / easy) and batch-all (every triplet with
positive loss), with `max_triplets` to cap the output by uniform sampling. Each row's negatives are sorted once;
the triplets of a positive pair are then a contiguous range of that order, found by binary search."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import torch

from hardmine._checks import check_choice, check_int, check_number
from hardmine.metric import _ops
from hardmine.metric._sampling import sample_ids
from hardmine.metric.base import BaseMiner, Block, Indices, MiningBatch, PositiveMask, as_torch_generator
from hardmine.metric.distances import DEFAULT_MAX_BYTES, BaseDistance

TRIPLET_TYPES = ("all", "hard", "semihard", "easy")
Search = Callable[[torch.Tensor, bool], torch.Tensor]
_DECODE_CHUNK = 2**22


class TripletMarginMiner(BaseMiner):
    """Triplets (a, p, n) selected by their margin d(a,n) - d(a,p) (s(a,p) - s(a,n) for similarities):

    - "all": d(a,n) <= d(a,p) + margin (the triplets that violate the margin);
    - "hard": those of "all" with d(a,n) <= d(a,p);
    - "semihard": those of "all" with d(a,n) > d(a,p);
    - "easy": d(a,n) > d(a,p) + margin.
    max_triplets: when set and more triplets qualify, a uniform sample of this many (without replacement).
    seed: an int, a torch.Generator or None, the only source of randomness for the sampling.
    The output can hold O(B * M * M) triplets without `max_triplets`; working memory stays O(rows x M).
    """

    name = "triplet_margin"

    bytes_per_pair = 24

    def __init__(self, margin: float = 0.2, type_of_triplets: str = "all", max_triplets: int | None = None,
                 seed: int | torch.Generator | None = None, distance: BaseDistance | None = None,
                 positive_mask: PositiveMask | None = None, max_block_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(distance, positive_mask, max_block_bytes)
        check_choice("type_of_triplets", type_of_triplets, TRIPLET_TYPES)
        self.margin = check_number("margin", margin, float("-inf"), float("inf"))
        self.type_of_triplets = type_of_triplets
        self.max_triplets = None if max_triplets is None else check_int("max_triplets", max_triplets)
        self.generator = as_torch_generator(seed)

    def _interval(self, search: Search, d_ap: torch.Tensor,
                  count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions [lo, hi) in a row's sorted negatives of the triplets of each positive (all [b, W]);
        `search(targets, right)` finds the first position past `targets` in each row."""
        threshold = d_ap + self.margin
        zero = torch.zeros_like(count)
        if self.type_of_triplets == "all":
            return zero, search(threshold, True)
        if self.type_of_triplets == "hard":
            return zero, search(torch.minimum(threshold, d_ap), True)
        if self.type_of_triplets == "semihard":
            return search(d_ap, True), search(threshold, True)
        return search(threshold, True), count

    def _ranges(self, batch: MiningBatch) -> Iterator[tuple[Block, torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per block: the block, and per positive slot [b, W] the first sorted position and the number of its
        triplets, and the sorted order of each row's negatives [b, M]."""
        for block in batch.blocks(self.bytes_per_pair):
            d_ap, sorted_values, order = block.sorted_negatives()
            count = block.negative_counts()[:, None].expand_as(d_ap)
            search = functools.partial(_ops.first_position, sorted_values)
            lo, hi = self._interval(search, d_ap, count)
            size = (torch.minimum(hi, count) - lo).clamp_(min=0).masked_fill_(~block.pos_valid, 0)
            yield block, lo, size, order

    @staticmethod
    def _decode(block: Block, lo: torch.Tensor, size: torch.Tensor, order: torch.Tensor, ids: torch.Tensor,
                out: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Write the triplets numbered `ids` (sorted, 0-based within the block, slot by slot in row-major order)
        into the three int64 tensors `out`, each of len(ids)."""
        flat_size = size.reshape(-1)
        end = torch.cumsum(flat_size, 0)
        row = torch.div(torch.arange(flat_size.shape[0], device=ids.device), size.shape[1], rounding_mode="floor")
        # where a pair's triplets start in the flattened sorted order, minus the pair's first id
        base = row * order.shape[1] + lo.reshape(-1) - (end - flat_size)
        pair = torch.searchsorted(end, ids, right=True)
        torch.index_select(row + block.start, 0, pair, out=out[0])
        torch.index_select(block.pos_cols.reshape(-1), 0, pair, out=out[1])
        torch.index_select(order.reshape(-1), 0, base.index_select(0, pair).add_(ids), out=out[2])
        return out

    def mine(self, batch: MiningBatch) -> Indices:
        out = []
        if self.max_triplets is None:
            for block, lo, size, order in self._ranges(batch):
                total = int(size.sum())
                parts = tuple(torch.empty(total, dtype=torch.int64, device=size.device) for _ in range(3))
                for first in range(0, total, _DECODE_CHUNK):  # bounded temporaries beside the output
                    ids = torch.arange(first, min(first + _DECODE_CHUNK, total), device=size.device)
                    self._decode(block, lo, size, order, ids, tuple(p[first:first + ids.numel()] for p in parts))
                out.append(parts)
        else:
            totals = [int(size.sum()) for _, _, size, _ in self._ranges(batch)]
            chosen = sample_ids(sum(totals), self.max_triplets, self.generator)
            bounds = torch.tensor([0, *totals]).cumsum(0).tolist()
            for k, (block, lo, size, order) in enumerate(self._ranges(batch)):
                ids = (chosen[(chosen >= bounds[k]) & (chosen < bounds[k + 1])] - bounds[k]).to(size.device)
                parts = tuple(torch.empty(ids.numel(), dtype=torch.int64, device=size.device) for _ in range(3))
                out.append(self._decode(block, lo, size, order, ids, parts))
        if len(out) == 1:
            return out[0]
        return tuple(torch.cat(part) for part in zip(*out))


class BatchAllMiner(TripletMarginMiner):
    """Every triplet (a, p, n) with positive loss: d(a,n) < d(a,p) + margin (Hermans et al. 2017, batch-all).

    max_triplets / seed: an optional uniform cap on the output, as in TripletMarginMiner.
    """

    name = "batch_all"

    def __init__(self, margin: float = 0.2, max_triplets: int | None = None,
                 seed: int | torch.Generator | None = None, distance: BaseDistance | None = None,
                 positive_mask: PositiveMask | None = None, max_block_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(margin, "all", max_triplets, seed, distance, positive_mask, max_block_bytes)

    def _interval(self, search: Search, d_ap: torch.Tensor,
                  count: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(count), search(d_ap + self.margin, False)
