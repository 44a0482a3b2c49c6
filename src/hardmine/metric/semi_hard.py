"""Semi-hard triplets (FaceNet, Schroff et al. 2015, as TF-Addons' semi-hard triplet loss picks them), in O(B*M)
memory: each row's negatives are sorted once and every positive finds its negative by binary search."""

from __future__ import annotations

import torch

from hardmine._checks import check_number
from hardmine.metric import _ops
from hardmine.metric._batch import concat_blocks
from hardmine.metric.base import BaseMiner, Indices, MiningBatch, PositiveMask
from hardmine.metric.distances import DEFAULT_MAX_BYTES, BaseDistance


class SemiHardMiner(BaseMiner):
    """One triplet (a, p, n) per positive pair: the closest negative farther than the positive, d(a,n) > d(a,p);
    when no negative is farther, the farthest negative (the easiest hard one).

    Triplets whose negative is already beyond the margin (d(a,n) >= d(a,p) + margin, zero loss) are left out.
    Similarities are handled as negated distances. Ties go to the smallest index. Memory: O(rows x M) per
    block, never the B x M x M triplet tensor.
    margin: the triplet margin, >= 0 (in the distance's units).
    """

    name = "semi_hard"

    bytes_per_pair = 24

    def __init__(self, margin: float = 0.2, distance: BaseDistance | None = None,
                 positive_mask: PositiveMask | None = None, max_block_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(distance, positive_mask, max_block_bytes)
        self.margin = check_number("margin", margin, 0.0, float("inf"))

    def mine(self, batch: MiningBatch) -> Indices:
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for block in batch.blocks(self.bytes_per_pair):
            d_ap, sorted_values, order = block.sorted_negatives()
            count = block.negative_counts()[:, None]
            position = _ops.first_position(sorted_values, d_ap, right=True)
            last = sorted_values.gather(1, (count - 1).clamp(min=0))
            fallback = _ops.first_position(sorted_values, last, right=False)
            position = torch.where(position < count, position, fallback)
            d_an = sorted_values.gather(1, position)
            row, slot = torch.nonzero(block.pos_valid & (count > 0) & (d_an < d_ap + self.margin)).unbind(1)
            negative = _ops.take(order, row, _ops.take(position, row, slot))
            out.append((row + block.start, _ops.take(block.pos_cols, row, slot), negative))
        return concat_blocks(out)
