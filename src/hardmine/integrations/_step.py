"""What the integrations share: the training-step call (record the per-sample loss, weight it, reduce it), and
the LR lambda that follows a run's progress when a policy decides its epochs' lengths as it goes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import hardmine as hm


def mined_loss(sampler: hm.HardExampleSampler, indices: Any, per_sample_loss: torch.Tensor) -> torch.Tensor:
    """`sampler.update(indices, loss)`, then the scalar `reduce(loss, sampler.weights(indices))` to back-propagate.

    indices: [B] int64 data set indices of the batch the sampler yielded; per_sample_loss: [B] with gradient.
    The update marks the batch consumed (what a checkpoint counts); the weights are the unbiased importance
    weights of the draw (ones for plain shuffling), on the loss's device.
    """
    if not isinstance(per_sample_loss, torch.Tensor) or per_sample_loss.ndim != 1:
        shape = tuple(per_sample_loss.shape) if isinstance(per_sample_loss, torch.Tensor) else type(per_sample_loss)
        raise ValueError(f"per_sample_loss must be a 1-D tensor [B] (use reduction='none'), got {shape}")
    sampler.update(indices, per_sample_loss.detach())
    return hm.reduce(per_sample_loss, sampler.weights(indices).to(per_sample_loss.device))


def by_progress(lr_lambda: Callable[[int], float], progress: Callable[[], float], total: int) -> Callable[[int], float]:
    """`lr_lambda` evaluated at step round(progress() * total) of a `total`-step schedule (capped at `total`),
    not at the scheduler's step count: `progress()` is the fraction of the run done, in [0, 1]."""
    def at_progress(_: int) -> float:
        return lr_lambda(min(total, round(progress() * total)))
    return at_progress
