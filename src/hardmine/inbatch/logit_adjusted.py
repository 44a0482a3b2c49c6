"""Logit-adjusted cross-entropy (Menon et al. 2021): the class prior added to the logits during training."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hardmine._checks import check_finite
from hardmine.inbatch.class_counts import ClassCounts, check_class_counts, check_targets
from hardmine.inbatch.losses import InBatchLoss, Reduction, _check_tensors


class LogitAdjustedLoss(InBatchLoss):
    """Cross-entropy on logits + tau * log(prior), prior_c = n_c / N from `class_counts` (Menon et al. 2021, "Long-tail
    learning via logit adjustment"): a frequent class must win by a margin that grows with its prior, so the
    model's own logits (used unadjusted at test time) are calibrated for balanced error. tau = 1 is the
    Fisher-consistent choice for balanced error, and is what balanced softmax (Ren et al. 2020) computes.

    class_counts: samples per class [C] in the training data (ints >= 0, at least one > 0); a class with n_c = 0
        gets an adjustment of -inf (it is never predicted during training; its targets are refused).
    tau: >= 0, the strength of the adjustment (0 is plain cross-entropy).
    reduction: "mean" over the elements, "sum", or "none" (the targets' shape).
    logits [B, C, *] with C = len(class_counts), integer target [B, *] in [0, C).
    """

    name = "logit_adjusted"
    selects = False

    def __init__(self, class_counts: ClassCounts, tau: float = 1.0, reduction: Reduction = "mean") -> None:
        super().__init__(reduction)
        self.tau = check_finite("tau", tau, minimum=0)
        self.counts = check_class_counts(class_counts)
        counts = torch.from_numpy(self.counts).to(torch.float64)
        if self.tau == 0:
            adjustment = torch.zeros_like(counts)
        else:
            adjustment = torch.where(counts > 0, self.tau * torch.log(counts / counts.sum()), float("-inf"))
        self.register_buffer("adjustment", adjustment.to(torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the adjusted logits against `target`, reduced as `reduction` says."""
        _check_tensors(logits, target, "logits")
        if not logits.is_floating_point() or logits.dim() < 2 or logits.shape[1] != self.counts.size:
            raise ValueError(f"logits must be floating point [B, {self.counts.size}, *] (one column per class of "
                             f"class_counts), got shape {tuple(logits.shape)} and dtype {logits.dtype}")
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ValueError(f"target must have shape {tuple(logits.shape[:1] + logits.shape[2:])}, got "
                             f"{tuple(target.shape)}")
        check_targets(target, self.counts, "logit_adjusted")
        shape = (1, -1) + (1,) * (logits.dim() - 2)
        adjusted = logits + self.adjustment.to(logits.device, logits.dtype).view(shape)
        return F.cross_entropy(adjusted, target, reduction=self.reduction)
