"""Losses that mine inside the batch: OHEM around any per-element loss, focal loss, misclassified up-weighting.

Each is an `InBatchLoss`: a `torch.nn.Module` with a `reduction` argument like torch's own ("mean", "sum",
"none") that declares in `selects` whether it keeps only some samples of a batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hardmine._checks import check_choice, check_finite, check_indices, check_int, check_number
from hardmine.inbatch.reduction import reduce
from hardmine.inbatch.select import Threshold, TopK
from hardmine.registry import Registered, Registry
from hardmine.sampling.memory import Column, ScoreMemory

Reduction = Literal["mean", "sum", "none"]
PerElementLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_reduction(reduction: str) -> str:
    return check_choice("reduction", reduction, ("mean", "sum", "none"))


def _check_base_loss(base_loss: PerElementLoss) -> PerElementLoss:
    if not callable(base_loss):
        raise TypeError(f"base_loss must be callable (input, target) -> per-element loss, got {base_loss!r}")
    if getattr(base_loss, "reduction", "none") != "none":
        raise ValueError(f"base_loss must return per-element losses: construct it with reduction='none', "
                         f"got reduction={base_loss.reduction!r}")
    return base_loss


def _check_tensors(input: Any, target: Any, input_name: str = "input") -> None:
    """Both arguments are tensors, the input floating point with finite values (a NaN would reach the loss and the
    memory)."""
    for name, value in ((input_name, input), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not input.is_floating_point():
        raise TypeError(f"{input_name} must be floating point (a loss needs a gradient), got dtype {input.dtype}")
    if input.device.type == "meta":
        raise ValueError(f"{input_name} is a meta tensor: it holds no values")
    if not bool(torch.isfinite(input).all()):
        bad = int((~torch.isfinite(input)).sum())
        raise ValueError(f"{input_name} has {bad} non-finite value(s) (NaN or inf); nothing was computed or recorded")


def _per_element(base_loss: PerElementLoss, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    try:
        loss = base_loss(input, target)
    except IndexError as error:  # torch's message for a class index out of range names no argument
        raise ValueError(f"target holds values base_loss cannot use with input of shape {tuple(input.shape)} "
                         f"(target min {int(target.min())}, max {int(target.max())}): {error}") from None
    if not isinstance(loss, torch.Tensor) or loss.dim() == 0:
        raise ValueError("base_loss returned a scalar: it must return one loss per element (reduction='none')")
    return loss


def per_sample_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy [B, *] of logits [B, C, *] against integer class targets [B, *], one loss per sample, with its
    gradient: hardmine's one per-sample cross-entropy (compare's default base loss, a reference model's loss, the
    evaluation's and the loss scorer's)."""
    return F.cross_entropy(logits, targets.long(), reduction="none")


LOSSES = Registry("in-batch loss")
"""Short names for the CLI and the experiment runner: `LOSSES["focal"](gamma=2.0)`; an `InBatchLoss` subclass that
sets `name` registers itself."""


class InBatchLoss(Registered, nn.Module):
    """Base of every in-batch loss: `loss(input, target)` -> the loss, reduced as `reduction` says.

    reduction: "mean", "sum", or "none" (one loss per element, of the targets' shape); anything else is refused
        (`ValueError` naming `reduction`). "sum" is the sum of "none".
    selects: a class attribute every subclass declares. True: the loss keeps only some elements of each batch
        (OHEM, a trimmed loss): with reduction="none" an element it does not keep has a loss of exactly 0 and no
        gradient, and `hardmine compare` back-propagates only the kept samples and counts only their backward
        compute. False: every valid element contributes (a reweighting such as focal loss), counted in full.
    name: set it on a subclass to register it in `LOSSES` (usable by name in `hardmine compare --strategies`).
    `hardmine.testing.check_inbatch_loss` checks the contract, the declaration included.
    """

    registry: ClassVar[Registry] = LOSSES
    selects: ClassVar[bool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        if not isinstance(getattr(cls, "selects", None), bool):
            raise TypeError(f"{cls.__name__} must declare whether it selects samples: set the class attribute "
                            "selects = True (it keeps only some samples of a batch) or selects = False")
        super().__init_subclass__(**kwargs)

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)


class OHEMLoss(InBatchLoss):
    """Online hard example mining around any per-element loss: back-propagate only the hardest elements.

    base_loss: (input, target) -> loss of any shape [B, *] (samples, pixels, anchors, tokens), e.g.
        `nn.CrossEntropyLoss(reduction="none", ignore_index=255)`.
    keep: the number (int) or fraction (float in (0, 1)) of valid elements kept, the highest losses first.
    threshold: instead of `keep`, keep every element whose loss is above it. For cross-entropy,
        `threshold=-math.log(0.7)` keeps the pixels whose true-class probability is below 0.7, as the
        OhemCrossEntropy of segmentation code bases does. Give exactly one of `keep` and `threshold`.
    min_kept: never keep fewer elements than this (capped at the number of valid elements).
    ignore_index: elements whose target equals it are never kept (needs a target of the loss's shape).
    reduction: "mean" (the mean over the kept elements; 0 when none is kept), "sum", or "none" (the
        per-element loss with zeros where not kept).
    """

    name = "ohem"
    selects = True

    def __init__(self, base_loss: PerElementLoss, keep: int | float | None = None, min_kept: int = 0,
                 threshold: float | None = None, ignore_index: int | None = None,
                 reduction: Reduction = "mean") -> None:
        super().__init__(reduction)
        self.base_loss = _check_base_loss(base_loss)
        if (keep is None) == (threshold is None):
            raise ValueError(f"give exactly one of keep and threshold, got keep={keep!r}, threshold={threshold!r}")
        self.min_kept = check_int("min_kept", min_kept, minimum=0)
        self.threshold: Threshold | None = None
        self.keep: TopK | None = None
        if threshold is not None:
            check_finite("threshold", threshold)
            self.threshold = Threshold(threshold, self.min_kept)
        elif isinstance(keep, float):
            self.keep = TopK(check_number("keep", keep, 0.0, 1.0, low_inclusive=False, high_inclusive=False))
        else:
            keep = check_int("keep", keep, minimum=0)
            if keep == 0 and self.min_kept == 0:
                raise ValueError("keep=0 with min_kept=0 keeps no element: nothing would be back-propagated; give "
                                 "keep >= 1 (a count) or a fraction in (0, 1), or min_kept >= 1")
            self.keep = TopK(keep)
        self.ignore_index = ignore_index

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The OHEM loss of `base_loss(input, target)`; the gradient reaches the kept elements only."""
        _check_tensors(input, target)
        loss = _per_element(self.base_loss, input, target)
        valid = None
        if self.ignore_index is not None:
            if target.shape != loss.shape:
                raise ValueError(f"ignore_index needs a target of the loss's shape {tuple(loss.shape)}, got "
                                 f"{tuple(target.shape)}")
            valid = target != self.ignore_index
        if self.threshold is not None:
            selection = self.threshold(loss.detach(), valid)
        else:
            if isinstance(self.keep.k, int) and self.keep.k > loss.numel():
                raise ValueError(f"keep={self.keep.k} is larger than the number of loss elements ({loss.numel()})")
            n_valid = loss.numel() if valid is None else int(valid.sum())
            k = max(self.keep.count(n_valid, loss.numel()), min(self.min_kept, n_valid))
            selection = TopK(k)(loss.detach(), valid)
        if self.reduction == "none":
            return torch.where(selection.mask(), loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
        return reduce(loss, selection, normalize="weighted" if self.reduction == "mean" else "sum")


class FocalLoss(InBatchLoss):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_t)**gamma so that easy examples fade out.

    Binary (sigmoid) when logits and float targets in [0, 1] have the same shape: numerically the formula of
    torchvision.ops.sigmoid_focal_loss, alpha_t = alpha for targets 1 and 1 - alpha for targets 0.
    Multi-class (softmax) when logits are [B, C, *] and targets int64 class indices [B, *]: alpha is a scalar
    (scales every class alike) or one weight per class; targets equal to `ignore_index` contribute 0 and are
    left out of the mean.
    alpha: None for no weighting. gamma: >= 0; gamma=0 with alpha=None is plain cross-entropy.
    reduction: "mean" over the (non-ignored) elements, "sum", or "none" (shape of the targets).
    """

    name = "focal"
    selects = False

    def __init__(self, alpha: float | Sequence[float] | torch.Tensor | None = 0.25, gamma: float = 2.0,
                 reduction: Reduction = "mean", ignore_index: int = -100) -> None:
        super().__init__(reduction)
        self.gamma = check_finite("gamma", gamma, minimum=0)
        self.ignore_index = int(ignore_index)
        self.alpha: float | None = None
        self.register_buffer("class_alpha", None)
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            self.alpha = check_number("alpha", alpha, 0.0, 1.0)
        elif alpha is not None:
            if isinstance(alpha, (str, bytes, bool)) or not isinstance(alpha, (Sequence, torch.Tensor, np.ndarray)):
                raise TypeError(f"alpha must be None, a number in [0, 1] or a 1-D sequence of class weights, got "
                                f"{alpha!r}")
            try:
                weights = torch.as_tensor(np.asarray(alpha, dtype=np.float64) if not isinstance(alpha, torch.Tensor)
                                          else alpha, dtype=torch.float32)
            except (TypeError, ValueError):
                raise TypeError(f"alpha class weights must be numbers, got {alpha!r}") from None
            if weights.dim() != 1 or weights.numel() == 0:
                raise ValueError(f"alpha must be a number or a 1-D sequence of class weights, got shape "
                                 f"{tuple(weights.shape)}")
            if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
                raise ValueError(f"alpha class weights must be finite and non-negative, got {weights.tolist()}")
            self.class_alpha = weights

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of `logits` against `target` (see the class docstring for the two layouts)."""
        if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
            raise TypeError(f"logits must be a floating-point tensor, got {getattr(logits, 'dtype', type(logits))}")
        _check_tensors(logits, target, "logits")
        if logits.numel() == 0:
            raise ValueError(f"logits is empty (shape {tuple(logits.shape)})")
        if target.shape == logits.shape:
            loss, valid = self._binary(logits, target), None
        elif logits.dim() >= 2 and target.shape == logits.shape[:1] + logits.shape[2:]:
            loss, valid = self._multiclass(logits, target)
        else:
            raise ValueError(f"target shape {tuple(target.shape)} fits neither binary (same as logits "
                             f"{tuple(logits.shape)}) nor multi-class (logits [B, C, *], target [B, *])")
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.mean() if valid is None else reduce(loss, valid, normalize="weighted")

    def _binary(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not target.is_floating_point():
            raise TypeError(f"binary focal loss needs float targets in [0, 1] of the logits' shape, got dtype "
                            f"{target.dtype}")
        if bool(((target < 0) | (target > 1)).any()):
            raise ValueError("binary targets must lie in [0, 1]")
        if self.class_alpha is not None:
            raise ValueError("per-class alpha needs multi-class targets; the binary loss takes a scalar alpha")
        p = torch.sigmoid(logits)
        ce_loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = p * target + (1 - p) * (1 - target)
        loss = ce_loss * ((1 - p_t) ** self.gamma)
        if self.alpha is not None:
            alpha_t = self.alpha * target + (1 - self.alpha) * (1 - target)
            loss = alpha_t * loss
        return loss

    def _multiclass(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if target.is_floating_point() or target.dtype == torch.bool:
            raise TypeError(f"multi-class focal loss needs integer class targets, got dtype {target.dtype}")
        num_classes = logits.shape[1]
        valid = target != self.ignore_index
        safe = target.masked_fill(~valid, 0)
        if bool(((safe < 0) | (safe >= num_classes)).any()):
            raise ValueError(f"target holds class indices outside [0, {num_classes}) other than ignore_index")
        log_p_t = F.log_softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        loss = -log_p_t
        if self.gamma != 0:
            loss = loss * (-torch.expm1(log_p_t)) ** self.gamma
        if self.class_alpha is not None:
            if self.class_alpha.numel() != num_classes:
                raise ValueError(f"alpha has {self.class_alpha.numel()} class weights but logits have "
                                 f"{num_classes} classes")
            loss = loss * self.class_alpha.to(loss.dtype)[safe]
        elif self.alpha is not None:
            loss = loss * self.alpha
        return torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device)), valid


def misclassified(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Boolean [B, *]: argmax over dim 1 differs from integer targets [B, *] (logits [B, C, *]), or, for binary
    logits and float targets of the same shape, the sign of the logit disagrees with target > 0.5."""
    with torch.no_grad():
        if target.shape == logits.shape and target.is_floating_point():
            return (logits > 0) != (target > 0.5)
        if logits.dim() >= 2 and target.shape == logits.shape[:1] + logits.shape[2:]:
            return logits.argmax(1) != target
    raise ValueError(f"cannot compare logits of shape {tuple(logits.shape)} with targets of shape "
                     f"{tuple(target.shape)} (dtype {target.dtype})")


EXPONENT_COLUMN = Column("misclassified_exponent", np.float32, 0.0, source=None)
"""MisclassifiedUpweight's per-sample exponent, a column of its memory that nothing else writes."""


class MisclassifiedUpweight(InBatchLoss):
    """Up-weight the misclassified examples: weight `factor` where the prediction is wrong, 1 elsewhere.

    base_loss: (logits, target) -> per-element loss (reduction='none') of the targets' shape.
    factor: >= 1, the weight of a misclassified element.
    memory: optional ScoreMemory over the data set (a sampler's may be shared: nothing else in it changes).
        Then the weights are AdaBoost-style and persist across steps: each sample has an exponent e (in the
        memory's own column "misclassified_exponent", declared here and checkpointed with the memory), raised by
        1 each time it is misclassified and lowered by 1 (not below 0) each time it is right, and weighs
        min(factor ** e, max_weight); build the loss before loading the memory's state, so that the column is
        declared. `forward` then needs the data set `indices` [B] of the batch. An index that appears several
        times in one batch counts each time, in batch order (as if the occurrences came one after the other);
        each occurrence weighs by its own exponent.
    max_weight: the cap of a weight with memory, so that a mislabeled sample cannot take over the batch.
    reduction: "mean" is the weighted mean sum(w * loss) / sum(w), "sum" is sum(w * loss), "none" is w * loss.
    """

    name = "misclassified"
    selects = False

    def __init__(self, base_loss: PerElementLoss, factor: float = 2.0, memory: ScoreMemory | None = None,
                 max_weight: float = 10.0, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)
        self.base_loss = _check_base_loss(base_loss)
        self.factor, self.max_weight = check_finite("factor", factor, 1), check_finite("max_weight", max_weight, 1)
        if memory is not None:
            if not isinstance(memory, ScoreMemory):
                raise TypeError(f"memory must be a hardmine.ScoreMemory or None, got {type(memory).__name__}")
            memory.declare(EXPONENT_COLUMN)
        self.memory = memory

    def weights(self, wrong: torch.Tensor, indices: Any = None) -> torch.Tensor:
        """Weights [B, *] for the boolean `wrong` [B, *]; with memory, updates the exponents of `indices` [B]."""
        if self.memory is None:
            return torch.where(wrong, self.factor, 1.0).to(torch.float32)
        if indices is None:
            raise ValueError("indices are required when MisclassifiedUpweight has a memory")
        if wrong.dim() != 1:
            raise ValueError(f"with memory the loss must be per sample [B], got shape {tuple(wrong.shape)}")
        idx = check_indices("indices", indices, self.memory.num_samples)
        if idx.shape != tuple(wrong.shape):
            raise ValueError(f"indices have shape {idx.shape} but the batch has shape {tuple(wrong.shape)}")
        step = np.where(wrong.detach().cpu().numpy(), 1.0, -1.0)
        distinct, inverse = np.unique(idx, return_inverse=True)
        current = self.memory.get(EXPONENT_COLUMN.name, distinct).astype(np.float64)
        exponent = np.empty(idx.size)
        order = np.argsort(inverse, kind="stable")  # occurrences of one index, in batch order
        grouped = inverse[order]
        first = np.r_[0, np.flatnonzero(grouped[1:] != grouped[:-1]) + 1]
        occurrence = np.empty(idx.size, dtype=np.int64)
        occurrence[order] = np.arange(idx.size) - np.repeat(first, np.diff(np.r_[first, idx.size]))
        for r in range(int(occurrence.max()) + 1):
            at = np.flatnonzero(occurrence == r)
            current[inverse[at]] = np.maximum(current[inverse[at]] + step[at], 0.0)
            exponent[at] = current[inverse[at]]
        self.memory.set(EXPONENT_COLUMN.name, current, distinct)
        weight = torch.pow(self.factor, torch.from_numpy(exponent).float()).clamp_max(self.max_weight)
        return weight.to(wrong.device)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, indices: Any = None) -> torch.Tensor:
        """The up-weighted loss of `base_loss(logits, target)`; `indices` [B] are needed with a memory."""
        _check_tensors(logits, target, "logits")
        wrong = misclassified(logits, target)
        loss = _per_element(self.base_loss, logits, target)
        if wrong.shape != loss.shape:
            raise ValueError(f"base_loss gave shape {tuple(loss.shape)}, expected the targets' shape "
                             f"{tuple(wrong.shape)}")
        weight = self.weights(wrong, indices).to(loss.dtype)
        if self.reduction == "none":
            return loss * weight
        return reduce(loss, weight, normalize="weighted" if self.reduction == "mean" else "sum")

