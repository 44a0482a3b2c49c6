"""Batch-hard (Hermans et al. 2017) and easy-positive / hard-negative (Xuan et al. 2020): one triplet per anchor."""

from __future__ import annotations

import torch

from hardmine.metric import _ops
from hardmine.metric._batch import concat_blocks
from hardmine.metric._label_fold import label_fold_extremes
from hardmine.metric.base import BaseMiner, Indices, MiningBatch


class BatchHardMiner(BaseMiner):
    """Per anchor, the hardest positive (farthest) and the hardest negative (closest): triplets (a, p, n).

    Anchors without a positive or without a negative are skipped. Ties go to the smallest index. Never builds
    a [B, M] mask: positives come as per-row column lists, negatives are the rest of each row.
    """

    name = "batch_hard"

    bytes_per_pair = 4
    _hardest_positive = True

    def mine(self, batch: MiningBatch) -> Indices:
        folded = label_fold_extremes(batch, self._hardest_positive)
        if folded is not None:
            return folded
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for block in batch.blocks(self.bytes_per_pair):
            if self._hardest_positive:
                pos_value, slot = block.positives(block.raw, float("-inf"), finish=True).max(1)
            else:
                pos_value, slot = block.positives(block.raw, float("inf"), finish=True).min(1)
            pos_col = block.pos_cols.gather(1, slot[:, None]).squeeze(1)
            block.mask_non_negatives_(block.raw, float("inf"))
            neg_value, neg_col = _ops.row_first_argmin(block.raw, block.finish)
            rows = torch.nonzero(torch.isfinite(pos_value) & torch.isfinite(neg_value)).flatten()
            out.append((rows + block.start, pos_col[rows], neg_col[rows]))
        return concat_blocks(out)


class EasyPositiveHardNegativeMiner(BatchHardMiner):
    """Per anchor, the easiest positive (closest) and the hardest negative (closest): triplets (a, p, n).

    Xuan et al., "Improved Embeddings with Easy Positive Triplet Mining" (WACV 2020); anchors without a
    positive or a negative are skipped; ties go to the smallest index.
    """

    name = "easy_positive_hard_negative"

    _hardest_positive = False
