"""Compute as a reviewer counts it, and the one mechanism that makes back-propagating fewer samples cheaper.

forwards: samples passed forward (every scoring pass and re-forward). backwards: samples in the graph of each
backward pass; a whole batch whose dropped samples only have weight 0 counts in full, since the backward pass
still runs through all of them. compute = forwards + 2 * backwards, in forward-sample equivalents (a backward
pass costs about two forward passes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hardmine.inbatch.reduction import reduce

REFORWARD_BELOW = 2 / 3  # k of B kept: re-forward + backward of k (3k) beats a backward of all B (2B) when k < 2B/3


def compute_of(forwards: float, backwards: float) -> float:
    """Forward-sample equivalents of `forwards` samples forwarded and `backwards` samples back-propagated."""
    return forwards + 2 * backwards


@dataclass
class Cost:
    """Running totals of one run: samples forwarded and back-propagated, training seconds, hardmine's statistics
    seconds (the sampler counts its own), and `position` (epochs done, a float)."""

    forwards: int = 0
    backwards: int = 0
    seconds: float = 0.0
    statistics_seconds: float = 0.0
    position: float = 0.0

    def forward(self, samples: int) -> None:
        """Count `samples` passed forward."""
        self.forwards += int(samples)

    def backward(self, samples: int) -> None:
        """Count `samples` in the graph of a backward pass."""
        self.backwards += int(samples)

    @property
    def compute(self) -> int:
        """forwards + 2 * backwards."""
        return int(compute_of(self.forwards, self.backwards))

    def totals(self) -> dict[str, int]:
        """{"forwards", "backwards", "compute"}: the totals so far."""
        return {"forwards": self.forwards, "backwards": self.backwards, "compute": self.compute}

    def point(self, sampler: Any) -> dict[str, list[float]]:
        """One curve point: the totals, training seconds and hardmine's seconds so far (each in a 1-list)."""
        mining = float(sampler.stats()["mining_seconds"]) if sampler is not None else 0.0
        return {**{k: [v] for k, v in self.totals().items()}, "seconds": [self.seconds],
                "hardmine_seconds": [mining + self.statistics_seconds]}


def backward_set(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_all: torch.Tensor, weights: torch.Tensor,
                 normalize: str, base_loss: Any, cost: Cost) -> torch.Tensor | None:
    """The loss to back-propagate for per-sample `weights` [B] (0 = dropped) of a batch x [B, ...], y [B] whose
    per-sample loss `loss_all` [B] (with its graph) came from a first forward pass; counts into `cost`.

    normalize: as in `hardmine.reduce` ("mean": divide by B, the importance-sampling estimate; "weighted": by the
    sum of the weights, the mean over the kept samples). When fewer than REFORWARD_BELOW * B samples are kept, they
    are forwarded again with gradient (`base_loss(model(x[kept]), y[kept])`) and only they are back-propagated
    (counted as re-forwards and backwards); otherwise the first pass's graph is back-propagated and all B samples
    count. Returns None, counting nothing, when every weight is 0.
    """
    weights = torch.as_tensor(weights, dtype=loss_all.dtype)
    keep = weights > 0
    kept = int(keep.sum())
    size = int(weights.numel())
    if kept == 0:
        return None
    if kept < REFORWARD_BELOW * size:
        cost.forward(kept)
        cost.backward(kept)
        per_sample = base_loss(model(x[keep]), y[keep])
        total = (weights[keep] * per_sample).sum()
        return total / (size if normalize == "mean" else weights.sum())
    cost.backward(size)
    return reduce(loss_all, weights, normalize=normalize)
