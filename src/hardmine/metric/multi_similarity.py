"""Multi-similarity pair mining (Wang et al. 2019, as PML's MultiSimilarityMiner)."""

from __future__ import annotations

import torch

from hardmine._checks import check_number
from hardmine.metric import _ops
from hardmine.metric._batch import concat_blocks
from hardmine.metric.base import BaseMiner, Indices, MiningBatch, PositiveMask
from hardmine.metric.distances import DEFAULT_MAX_BYTES, BaseDistance, CosineSimilarity


class MultiSimilarityMiner(BaseMiner):
    """Pairs (a1, p, a2, n): positives harder than the anchor's closest negative by less than epsilon, and
    negatives closer than the anchor's farthest positive plus epsilon.

    With similarities (default: cosine): keep p if s(a,p) - epsilon < max_n s(a,n), keep n if
    s(a,n) + epsilon > min_p s(a,p); with distances the same with d = -s.
    epsilon: the slack, >= 0 (PML's default 0.1).
    """

    name = "multi_similarity"

    arity = 4
    bytes_per_pair = 6

    def __init__(self, epsilon: float = 0.1, distance: BaseDistance | None = None,
                 positive_mask: PositiveMask | None = None, max_block_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(distance, positive_mask, max_block_bytes)
        self.epsilon = check_number("epsilon", epsilon, 0.0, float("inf"))

    def default_distance(self) -> BaseDistance:
        """Cosine similarity, as in the paper and PML."""
        return CosineSimilarity()

    def mine(self, batch: MiningBatch) -> Indices:
        out: list[tuple[torch.Tensor, ...]] = []
        for block in batch.blocks(self.bytes_per_pair):
            values = block.finish(block.raw)
            d_ap = block.positives(values, float("-inf"))
            farthest_positive = d_ap.amax(1) if d_ap.shape[1] else d_ap.new_full((block.rows,), float("-inf"))
            block.mask_non_negatives_(values, float("inf"))
            closest_negative = values.amin(1)
            pos_row, slot = torch.nonzero(d_ap + self.epsilon > closest_negative[:, None]).unbind(1)
            neg_row, negative = torch.nonzero(values.sub_(self.epsilon) < farthest_positive[:, None]).unbind(1)
            out.append((pos_row + block.start, _ops.take(block.pos_cols, pos_row, slot), neg_row + block.start,
                        negative))
        return concat_blocks(out)
