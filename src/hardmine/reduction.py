"""`reduce`: turn a per-sample (or per-element) loss and its weights into the scalar to back-propagate."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Normalize = Literal["mean", "weighted", "sum"]


def _as_weight(w: torch.Tensor | np.ndarray, like: torch.Tensor, position: int) -> torch.Tensor:
    t = torch.as_tensor(w, device=like.device)
    if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"weights[{position}] must be real-valued, got dtype {t.dtype}")
    t = t.to(like.dtype)
    try:
        torch.broadcast_shapes(t.shape, like.shape)
    except RuntimeError:
        raise ValueError(
            f"weights[{position}] has shape {tuple(t.shape)}, which does not broadcast to the loss shape {tuple(like.shape)}"
        ) from None
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"weights[{position}] must be finite and non-negative")
    return t


def reduce(per_sample_loss: torch.Tensor, *weights: torch.Tensor | np.ndarray,
           normalize: Normalize = "mean") -> torch.Tensor:
    """Weighted reduction of a loss of any shape [B, ...] to a scalar; never changes its inputs in place.

    per_sample_loss: the unreduced loss (e.g. `F.cross_entropy(..., reduction="none")`), shape [B] or [B, ...].
    weights: any number of non-negative weight arrays broadcastable to that shape, multiplied together
        (importance weights from a sampler, 0/1 masks from a selector, class weights, ...).
    normalize: "mean" divides the weighted sum by the number of elements (the unbiased importance-sampling
        estimate of the uniform mean), "weighted" by the sum of the weights (a weighted average; 0 when every
        weight is 0), "sum" does not divide.
    """
    if not isinstance(per_sample_loss, torch.Tensor):
        raise TypeError(f"per_sample_loss must be a torch.Tensor, got {type(per_sample_loss).__name__}")
    if not per_sample_loss.is_floating_point():
        raise TypeError(f"per_sample_loss must be floating point, got dtype {per_sample_loss.dtype}")
    if per_sample_loss.numel() == 0:
        raise ValueError("per_sample_loss is empty: nothing to reduce")
    if normalize not in ("mean", "weighted", "sum"):
        raise ValueError(f"normalize must be 'mean', 'weighted' or 'sum', got {normalize!r}")
    total_weight = torch.ones((), dtype=per_sample_loss.dtype, device=per_sample_loss.device)
    for i, w in enumerate(weights):
        total_weight = total_weight * _as_weight(w, per_sample_loss, i)
    weighted = per_sample_loss * total_weight
    if normalize == "sum":
        return weighted.sum()
    if normalize == "mean":
        return weighted.sum() / per_sample_loss.numel()
    denom = total_weight.expand_as(per_sample_loss).sum()
    return weighted.sum() / denom.clamp_min(torch.finfo(per_sample_loss.dtype).tiny)
