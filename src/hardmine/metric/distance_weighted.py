"""Distance-weighted sampling of negatives (Wu et al., "Sampling Matters in Deep Embedding Learning", 2017)."""

from __future__ import annotations

import torch

from hardmine._checks import check_number
from hardmine.metric import _ops
from hardmine.metric._batch import concat_blocks
from hardmine.metric.base import BaseMiner, Block, Indices, MiningBatch, PositiveMask, as_torch_generator
from hardmine.metric.distances import DEFAULT_MAX_BYTES, BaseDistance, EuclideanDistance


def negative_weights(distances: torch.Tensor, dim: int, cutoff: float, nonzero_loss_cutoff: float) -> torch.Tensor:
    """Sampling weights [b, M] (float64, rows scaled to a maximum of 1) from unit-sphere distances [b, M].

    The weight is the inverse of the density of distances between uniform points on the sphere S^(dim-1),
    1 / q(d) with log q(d) = (dim - 2) log d + (dim - 3) / 2 log(1 - d^2 / 4), the distance clamped below at
    `cutoff`; zero at or beyond `nonzero_loss_cutoff`, for +inf entries (non-negatives) and where undefined.
    """
    d = distances.double()
    clamped = d.clamp(min=cutoff)
    # in place, each step the same IEEE operation as (2 - dim) log c - (dim - 3) / 2 log1p(-c^2 / 4)
    log_w = clamped.square().mul_(-0.25).log1p_().mul_((dim - 3) / 2.0)
    log_w = clamped.log_().mul_(2.0 - dim).sub_(log_w)
    never = float("-inf")
    log_w.nan_to_num_(nan=never, posinf=never, neginf=never).masked_fill_(d >= nonzero_loss_cutoff, never)
    row_max = log_w.amax(1, keepdim=True)
    return log_w.sub_(row_max.clamp_(min=torch.finfo(torch.float64).min)).exp_()


class DistanceWeightedMiner(BaseMiner):
    """One triplet (a, p, n) per positive pair, n drawn with probability proportional to `negative_weights`.

    Needs Euclidean distance on L2-normalised embeddings (the weights assume points on the unit sphere).
    Anchors whose negatives all have zero weight are skipped.
    cutoff: distances below it are clamped (limits the weight variance; PML's default 0.5).
    nonzero_loss_cutoff: negatives at or beyond it get weight 0 (PML's default 1.4).
    seed: an int, a torch.Generator or None, the only source of randomness.
    """

    name = "distance_weighted"

    bytes_per_pair = 40

    def __init__(self, cutoff: float = 0.5, nonzero_loss_cutoff: float = 1.4,
                 seed: int | torch.Generator | None = None, distance: BaseDistance | None = None,
                 positive_mask: PositiveMask | None = None, max_block_bytes: int = DEFAULT_MAX_BYTES) -> None:
        super().__init__(distance, positive_mask, max_block_bytes)
        if not (isinstance(self.distance, EuclideanDistance) and self.distance.normalize):
            raise ValueError(f"DistanceWeightedMiner needs EuclideanDistance(normalize=True), got {self.distance!r}")
        self.cutoff = check_number("cutoff", cutoff, 0.0, 2.0, low_inclusive=False)
        self.nonzero_loss_cutoff = check_number("nonzero_loss_cutoff", nonzero_loss_cutoff, 0.0, float("inf"),
                                                  low_inclusive=False)
        self.generator = as_torch_generator(seed)

    def _sample(self, block: Block, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[b, W]: a sampled negative column for each positive slot, and whether the anchor has any weight."""
        cdf = torch.cumsum(weights, 1)
        total = cdf[:, -1:]
        # one draw per positive pair in (row, column) order, whatever the padded layout
        uniform = torch.zeros(block.pos_cols.shape, dtype=torch.float64, device=cdf.device)
        draws = torch.rand(int(block.pos_valid.sum()), generator=self.generator, dtype=torch.float64)
        uniform[block.pos_valid] = draws.to(cdf.device)
        target = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
        column = torch.searchsorted(cdf, target, right=True).clamp_(max=cdf.shape[1] - 1)
        return column, total > 0

    def mine(self, batch: MiningBatch) -> Indices:
        dim = batch.query.shape[1]
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for block in batch.blocks(self.bytes_per_pair):
            values = block.mask_non_negatives_(block.finish(block.raw), float("inf"))
            weights = negative_weights(values, dim, self.cutoff, self.nonzero_loss_cutoff)
            del values
            negative, ok = self._sample(block, weights)
            row, slot = torch.nonzero(block.pos_valid & ok).unbind(1)
            out.append((row + block.start, _ops.take(block.pos_cols, row, slot), _ops.take(negative, row, slot)))
        return concat_blocks(out)
