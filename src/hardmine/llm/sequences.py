"""Sequence-level losses for sample-level selection: one loss per sequence, the mean over its label tokens."""

from __future__ import annotations

from typing import Any

import torch

from hardmine.llm.token_loss import IGNORE_INDEX, token_losses


def check_token_shapes(token_loss: Any, mask: Any, reference_loss: Any = None) -> None:
    """Raise naming the argument unless token_loss is a float tensor [B, T], mask a bool or 0/1 tensor of its
    shape, and reference_loss (when given) a float tensor of its shape."""
    if not isinstance(token_loss, torch.Tensor) or not token_loss.is_floating_point() or token_loss.ndim != 2:
        what = f"shape {tuple(token_loss.shape)} dtype {token_loss.dtype}" if isinstance(token_loss, torch.Tensor) \
            else type(token_loss).__name__
        raise ValueError(f"token_loss must be a float tensor [B, T], got {what}")
    if not isinstance(mask, torch.Tensor) or mask.shape != token_loss.shape or mask.is_floating_point():
        what = f"shape {tuple(mask.shape)} dtype {mask.dtype}" if isinstance(mask, torch.Tensor) \
            else type(mask).__name__
        raise ValueError(f"mask must be a bool (or integer 0/1) tensor of token_loss's shape "
                         f"{tuple(token_loss.shape)}, got {what}")
    if reference_loss is not None and (not isinstance(reference_loss, torch.Tensor)
                                       or reference_loss.shape != token_loss.shape):
        what = tuple(reference_loss.shape) if isinstance(reference_loss, torch.Tensor) \
            else type(reference_loss).__name__
        raise ValueError(f"reference_loss must be a tensor of token_loss's shape {tuple(token_loss.shape)}, "
                         f"got {what}")


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
