"""Class-weighted loss: each sample's loss weighted by 1 / n_c of its class (the practitioner's reweighting)."""

from __future__ import annotations

import torch
from torch import nn

from hardmine.inbatch.class_counts import ClassCounts, check_class_counts, check_targets
from hardmine.inbatch.losses import (
    InBatchLoss,
    PerElementLoss,
    Reduction,
    _check_base_loss,
        _check_tensors,
    _per_element,
)


class ClassWeightedLoss(InBatchLoss):
    """Inverse-frequency weighting: the loss of a sample of class c is multiplied by w_c = N / (C' n_c), where n_c
    is class c's count in `class_counts`, N their sum and C' the number of classes with n_c > 0, so that the
    weights' mean over the training distribution is 1 (the loss keeps its scale: no learning-rate effect on
    average) and every class carries the same total weight.

    class_counts: samples per class [C] in the training data (ints >= 0, at least one > 0).
    base_loss: (logits, target) -> per-element loss of the targets' shape (reduction='none'); default
        cross-entropy.
    reduction: "mean" is sum(w * loss) / (number of elements), "sum" is sum(w * loss), "none" is w * loss.
    A target of a class outside [0, C) or with n_c = 0 is refused.
    """

    name = "class_weighted"
    selects = False

    def __init__(self, class_counts: ClassCounts, base_loss: PerElementLoss | None = None,
                 reduction: Reduction = "mean") -> None:
        super().__init__(reduction)
        self.counts = check_class_counts(class_counts)
        self.base_loss = _check_base_loss(base_loss if base_loss is not None else nn.CrossEntropyLoss(reduction="none"))
        counts = torch.from_numpy(self.counts).to(torch.float64)
        present = int((counts > 0).sum())
        weight = torch.where(counts > 0, counts.sum() / (present * counts.clamp_min(1)), torch.zeros(()))
        self.register_buffer("class_weight", weight.to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The class-weighted loss of `base_loss(logits, target)`: logits [B, C, *], integer target [B, *]."""
        _check_tensors(logits, target, "logits")
        check_targets(target, self.counts, "class_weighted")
        loss = _per_element(self.base_loss, logits, target)
        if loss.shape != target.shape:
            raise ValueError(f"base_loss gave shape {tuple(loss.shape)}, expected the targets' shape "
                             f"{tuple(target.shape)}")
        weighted = loss * self.class_weight.to(loss.device, loss.dtype)[target]
        if self.reduction == "none":
            return weighted
        return weighted.sum() if self.reduction == "sum" else weighted.mean()
