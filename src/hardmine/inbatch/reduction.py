"""`reduce`: turn a per-sample (or per-element) loss and its weights into the scalar to back-propagate."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from hardmine._checks import check_choice
from hardmine.inbatch.select import Selection
from hardmine.weights import BatchWeights

Normalize = Literal["mean", "weighted", "sum"]


def _as_weight(w: torch.Tensor | np.ndarray, like: torch.Tensor, position: int) -> torch.Tensor:
    if isinstance(w, np.ndarray) and w.dtype.kind not in "biuf":
        raise TypeError(f"weights[{position}] must be real-valued or a boolean mask, got a numpy array of dtype "
                        f"{w.dtype}")
    if isinstance(w, torch.Tensor) and w.device.type == "meta":
        raise ValueError(f"weights[{position}] is a meta tensor: it holds no values")
    try:
        t = torch.as_tensor(w, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"weights[{position}] must be a tensor or an array of numbers, got "
                        f"{type(w).__name__}") from None
    if not (t.is_floating_point() or t.dtype in (torch.bool, torch.int32, torch.int64)):
        raise TypeError(f"weights[{position}] must be real-valued or a boolean mask, got dtype {t.dtype}")
    t = t.to(like.dtype)
    _check_weight_shape(tuple(t.shape), tuple(like.shape), position)
    _check_finite_nonnegative(t, position)
    return t


def _check_weight_shape(shape: tuple[int, ...], loss: tuple[int, ...], position: int) -> None:
    """Raise unless a weight of `shape` broadcasts to the loss shape without changing it (the same shape, a
    scalar, [B, 1] for a loss [B, T], class weights [C] for a loss [B, C]). Broadcasting that would grow the
    loss ([B] against [B, 1] gives [B, B]: every sample times every weight) is refused: it is silently wrong."""
    if shape == loss:
        return
    try:
        grown = tuple(torch.broadcast_shapes(shape, loss)) != loss
    except RuntimeError:
        grown = True
    if not grown:
        return
    hint = ""
    if math.prod(shape) == math.prod(loss):
        hint = f"; reshape them to {loss} (e.g. weights.reshape(per_sample_loss.shape))"
    elif len(shape) == 1 and len(loss) > 1 and shape[0] == loss[0]:
        hint = f"; per-sample weights of a loss {loss} need shape ({loss[0]}{', 1' * (len(loss) - 1)})"
    raise ValueError(f"weights[{position}] has shape {shape} but per_sample_loss has shape {loss}: the shapes must "
                     f"match (a weight may only repeat along the loss, never enlarge it){hint}")


def _check_finite_nonnegative(t: torch.Tensor, position: int) -> None:
    """Raise ValueError on the CPU; on an accelerator a device-side assert, so that nothing waits for the device."""
    message = f"weights[{position}] must be finite and non-negative"
    ok = torch.isfinite(t).all() & (t >= 0).all()
    if t.device.type == "cpu":
        if not ok:
            raise ValueError(message)
    else:
        torch._assert_async(ok, message)


def _plain_weighted_mean(loss: object, weights: tuple) -> torch.Tensor | None:
    """sum(loss * w) / B for a 1-D float loss and one weight tensor of its shape, dtype and device; else None.

    A sampler's `BatchWeights`, valid by construction and unchanged, are not inspected (their `over_size`, w / B,
    makes the mean one dot product); other weights get one check.
    """
    if len(weights) != 1 or type(loss) is not torch.Tensor:
        return None
    w = weights[0]
    if not loss.is_floating_point() or loss.ndim != 1 or loss.numel() == 0:
        return None
    valid = False
    if type(w) is BatchWeights:
        over_size, valid = w.over_size, w.valid
        if over_size is not None and over_size.shape == loss.shape and over_size.dtype == loss.dtype \
                and over_size.device == loss.device:
            return torch.dot(loss, over_size)
        w = w.as_subclass(torch.Tensor)
    elif type(w) is not torch.Tensor:
        return None
    if w.shape != loss.shape or w.dtype != loss.dtype or w.device != loss.device:
        return None
    if not valid:
        _check_finite_nonnegative(w, 0)
    return torch.dot(loss, w) / loss.numel()


def reduce(per_sample_loss: torch.Tensor, *weights: torch.Tensor | np.ndarray | Selection,
           normalize: Normalize = "mean") -> torch.Tensor:
    """Weighted reduction of a loss of any shape [B, ...] to a scalar; never changes its inputs in place.

    per_sample_loss: the unreduced loss (e.g. `F.cross_entropy(..., reduction="none")`), shape [B] or [B, ...].
    weights: any number of non-negative weight arrays of that shape, or that broadcast to it without enlarging it
        ([B, 1] for a loss [B, T], class weights [C] for [B, C]; a [B] weight for a [B, 1] loss, which would
        give [B, B], is refused), multiplied together
        (importance weights from a sampler, boolean or 0/1 masks, class weights, ...), and at most one
        `Selection` from a selector of `hardmine.inbatch.select` (made from scores of exactly the loss's shape).
        With a Selection only the selected elements are gathered, so the gradient is exactly 0 elsewhere and a
        NaN in an element that was not selected does not reach the result.
    A 1-D loss with one weight tensor of its shape, dtype and device costs a plain weighted mean: one check and
    one dot product; the `BatchWeights` that `HardExampleSampler.weights` gives cost the dot product alone.
    normalize: "mean" divides the weighted sum by the number of elements (the unbiased importance-sampling
        estimate of the uniform mean), "weighted" by the sum of the weights (a weighted average, e.g. the mean
        over the kept elements of a Selection or a mask; 0 when every weight is 0), "sum" does not divide.
    """
    if normalize == "mean":
        fast = _plain_weighted_mean(per_sample_loss, weights)
        if fast is not None:
            return fast
    if not isinstance(per_sample_loss, torch.Tensor):
        raise TypeError(f"per_sample_loss must be a torch.Tensor, got {type(per_sample_loss).__name__}")
    if not per_sample_loss.is_floating_point():
        raise TypeError(f"per_sample_loss must be floating point, got dtype {per_sample_loss.dtype}")
    if per_sample_loss.device.type == "meta":
        raise ValueError("per_sample_loss is a meta tensor: it holds no values to reduce")
    if per_sample_loss.numel() == 0:
        raise ValueError("per_sample_loss is empty: nothing to reduce")
    check_choice("normalize", normalize, ("mean", "weighted", "sum"))
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


def _check_selection_weight(weight: torch.Tensor) -> None:
    """Raise ValueError (a device-side assert on an accelerator) unless a Selection's weights are finite and
    non-negative: a negative weight would make the loss to minimise negative."""
    message = "the Selection's weight must be finite and non-negative"
    if weight.numel() == 0:
        return
    ok = torch.isfinite(weight).all() & (weight >= 0).all()
    if weight.device.type == "cpu":
        if not ok:
            bad = ~(torch.isfinite(weight) & (weight >= 0))
            raise ValueError(f"{message}: {int(bad.sum())} are not, e.g. {float(weight[bad][0])}")
    else:
        torch._assert_async(ok, message)


def _reduce_selected(loss: torch.Tensor, selection: Selection, other: torch.Tensor,
                     normalize: Normalize) -> torch.Tensor:
    """`reduce` over the elements of `selection` only, each weighted by its selection weight times `other`."""
    if tuple(selection.shape) != tuple(loss.shape):
        raise ValueError(f"the Selection was made for shape {tuple(selection.shape)} but per_sample_loss has shape "
                         f"{tuple(loss.shape)}")
    index = selection.index.to(loss.device)
    weight = selection.weight.to(loss.device, loss.dtype)
    _check_selection_weight(weight)
    if other.dim() > 0:
        weight = weight * other.expand_as(loss).reshape(-1)[index]
    weighted = (loss.reshape(-1)[index] * weight).sum()
    if normalize == "sum":
        return weighted
    if normalize == "mean":
        return weighted / loss.numel()
    return weighted / weight.sum().clamp_min(torch.finfo(loss.dtype).tiny)
