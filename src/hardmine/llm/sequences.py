"""Sequence-level losses for sample-level selection: one loss per sequence, the mean over its label tokens."""

from __future__ import annotations

from typing import Any

import torch

from hardmine.llm.token_loss import IGNORE_INDEX, check_token_shapes, token_losses


def sequence_losses(token_loss: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence loss [B]: the mean of token_loss [B, T] over each row's label tokens (mask [B, T]), with
    gradient. A sequence with no label token (labels entirely -100) has loss 0: nothing to learn, the easiest."""
    check_token_shapes(token_loss, mask)
    valid = mask.to(token_loss.dtype)
    return (token_loss * valid).sum(1) / valid.sum(1).clamp_min(1.0)


def sequence_cross_entropy(outputs: Any, labels: torch.Tensor) -> torch.Tensor:
    """Per-sequence causal-LM loss [B] of `outputs.logits` (or logits) [B, T, V] against unshifted labels [B, T]
    (-100 ignored): the `per_sample_loss` of HardMiningTrainer and the `loss_fn` of `hm.reference_losses` for
    sample-level selection of sequences (online_top_loss, rho_loss, prune_easy)."""
    logits = outputs.logits if hasattr(outputs, "logits") else outputs
    return sequence_losses(*token_losses(logits, labels, IGNORE_INDEX))
