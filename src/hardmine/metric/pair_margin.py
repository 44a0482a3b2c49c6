"""Pair-margin mining (PML's PairMarginMiner): positive pairs that are too far, negative pairs that are too close."""

from __future__ import annotations

import torch

from hardmine._checks import check_number
from hardmine.metric import _ops
from hardmine.metric._batch import concat_blocks
from hardmine.metric.base import BaseMiner, Indices, MiningBatch, PositiveMask
from hardmine.metric.distances import DEFAULT_MAX_BYTES, BaseDistance


class PairMarginMiner(BaseMiner):
    """Pairs (a1, p, a2, n): positives with d(a,p) > pos_margin and negatives with d(a,n) < neg_margin.

    With a similarity the comparisons flip, as in PML: s(a,p) < pos_margin and s(a,n) > neg_margin.
    pos_margin, neg_margin: finite thresholds in the distance's units (PML's defaults 0.2 and 0.8).
    """

    name = "pair_margin"

    arity = 4
    bytes_per_pair = 6

    def __init__(self, pos_margin: float = 0.2, neg_margin: float = 0.8, distance: BaseDistance | None = None,
                 positive_mask: PositiveMask | None = None, max_block_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(distance, positive_mask, max_block_bytes)
        self.pos_margin = check_number("pos_margin", pos_margin, float("-inf"), float("inf"))
        self.neg_margin = check_number("neg_margin", neg_margin, float("-inf"), float("inf"))

    def mine(self, batch: MiningBatch) -> Indices:
        sign = -1.0 if batch.distance.is_similarity else 1.0
        pos_threshold, neg_threshold = sign * self.pos_margin, sign * self.neg_margin
        out: list[tuple[torch.Tensor, ...]] = []
        for block in batch.blocks(self.bytes_per_pair):
            values = block.finish(block.raw)
            pos_row, slot = torch.nonzero(block.positives(values, float("-inf")) > pos_threshold).unbind(1)
            block.mask_non_negatives_(values, float("inf"))
            neg_row, negative = torch.nonzero(values < neg_threshold).unbind(1)
            out.append((pos_row + block.start, _ops.take(block.pos_cols, pos_row, slot), neg_row + block.start,
                        negative))
        return concat_blocks(out)
