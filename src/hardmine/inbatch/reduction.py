"""`reduce`: turn a per-sample (or per-element) loss and its weights into the scalar to back-propagate."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from hardmine.inbatch.select import Selection

Normalize = Literal["mean", "weighted", "sum"]


def _as_weight(w: torch.Tensor | np.ndarray, like: torch.Tensor, position: int) -> torch.Tensor:
    t = torch.as_tensor(w, device=like.device)
    if not (t.is_floating_point() or t.dtype in (torch.bool, torch.int32, torch.int64)):
        raise TypeError(f"weights[{position}] must be real-valued or a boolean mask, got dtype {t.dtype}")
    t = t.to(like.dtype)
    try:
        torch.broadcast_shapes(t.shape, like.shape)
    except RuntimeError:
        raise ValueError(
            f"weights[{position}] has shape {tuple(t.shape)}, which does not broadcast to the loss shape "
            f"{tuple(like.shape)}"
        ) from None
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"weights[{position}] must be finite and non-negative")
    return t


def reduce(per_sample_loss: torch.Tensor, *weights: torch.Tensor | np.ndarray | Selection,
           normalize: Normalize = "mean") -> torch.Tensor:
    """Weighted reduction of a loss of any shape [B, ...] to a scalar; never changes its inputs in place.

    per_sample_loss: the unreduced loss (e.g. `F.cross_entropy(..., reduction="none")`), shape [B] or [B, ...].
    weights: any number of non-negative weight arrays broadcastable to that shape, multiplied together
        (importance weights from a sampler, boolean or 0/1 masks, class weights, ...), and at most one
        `Selection` from a selector of `hardmine.inbatch.select` (made from scores of exactly the loss's shape).
        With a Selection only the selected elements are gathered, so the gradient is exactly 0 elsewhere and a
        NaN in an element that was not selected does not reach the result.
    normalize: "mean" divides the weighted sum by the number of elements (the unbiased importance-sampling
        estimate of the uniform mean), "weighted" by the sum of the weights (a weighted average, e.g. the mean
        over the kept elements of a Selection or a mask; 0 when every weight is 0), "sum" does not divide.
    """
    if not isinstance(per_sample_loss, torch.Tensor):
        raise TypeError(f"per_sample_loss must be a torch.Tensor, got {type(per_sample_loss).__name__}")
    if not per_sample_loss.is_floating_point():
        raise TypeError(f"per_sample_loss must be floating point, got dtype {per_sample_loss.dtype}")
    if per_sample_loss.numel() == 0:
        raise ValueError("per_sample_loss is empty: nothing to reduce")
    if normalize not in ("mean", "weighted", "sum"):
        raise ValueError(f"normalize must be 'mean', 'weighted' or 'sum', got {normalize!r}")
    selections = [w for w in weights if isinstance(w, Selection)]
    if len(selections) > 1:
        raise ValueError(f"weights hold {len(selections)} Selections; combine them into one first")
    total_weight = torch.ones((), dtype=per_sample_loss.dtype, device=per_sample_loss.device)
    for i, w in enumerate(weights):
        if not isinstance(w, Selection):
            total_weight = total_weight * _as_weight(w, per_sample_loss, i)
    if selections:
        return _reduce_selected(per_sample_loss, selections[0], total_weight, normalize)
    weighted = per_sample_loss * total_weight
    if normalize == "sum":
        return weighted.sum()
    if normalize == "mean":
        return weighted.sum() / per_sample_loss.numel()
    denom = total_weight.expand_as(per_sample_loss).sum()
    return weighted.sum() / denom.clamp_min(torch.finfo(per_sample_loss.dtype).tiny)


def _reduce_selected(loss: torch.Tensor, selection: Selection, other: torch.Tensor,
                     normalize: Normalize) -> torch.Tensor:
    """`reduce` over the elements of `selection` only, each weighted by its selection weight times `other`."""
    if tuple(selection.shape) != tuple(loss.shape):
        raise ValueError(f"the Selection was made for shape {tuple(selection.shape)} but per_sample_loss has shape "
                         f"{tuple(loss.shape)}")
    index = selection.index.to(loss.device)
    weight = selection.weight.to(loss.device, loss.dtype)
    if other.dim() > 0:
        weight = weight * other.expand_as(loss).reshape(-1)[index]
    weighted = (loss.reshape(-1)[index] * weight).sum()
    if normalize == "sum":
        return weighted
    if normalize == "mean":
        return weighted / loss.numel()
    return weighted / weight.sum().clamp_min(torch.finfo(loss.dtype).tiny)
