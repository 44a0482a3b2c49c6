"""Per-token losses of a causal language model, with the causal shift and `ignore_index` as transformers does."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from hardmine._checks import check_not_meta
from hardmine.inbatch.losses import per_sample_cross_entropy

IGNORE_INDEX = -100
"""The label transformers' collators give to padding and to tokens that are not trained on (prompts)."""


def shift_labels(labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """The label each position predicts: labels [B, T] moved one step left, `ignore_index` at the last position
    (what transformers' `ForCausalLMLoss` does), so position t's loss belongs to token t + 1 and stays at t."""
    return F.pad(labels[:, 1:], (0, 1), value=ignore_index)


def token_losses(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                 shift: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of each token and the mask of the tokens that have a label, both [B, T].

    logits: [B, T, V] float (the model's `outputs.logits`); labels: int [B, T], the input ids with
        `ignore_index` (-100) on padding and untrained tokens, unshifted as the Trainer's collators give them.
    shift: True (the default) pairs position t's logits with labels[t + 1], as transformers' causal-LM loss does;
        False takes labels already aligned with the logits.
    Returns (loss [B, T] float32 with gradient, 0 where the mask is False; mask [B, T] bool). Position t's loss is
    that of predicting token t + 1, so the last position is never valid. Labels outside [0, V) that are not
    `ignore_index` raise ValueError.
    """
    for name, value in (("logits", logits), ("labels", labels)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        check_not_meta(name, value)
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits must be [B, T, V] and labels [B, T] of the same B and T, got logits "
                         f"{tuple(logits.shape)} and labels {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must hold integer token ids, got dtype {labels.dtype}")
    target = shift_labels(labels, ignore_index) if shift else labels
    mask = target != ignore_index
    safe = target.masked_fill(~mask, 0)
    vocab = logits.shape[-1]
    if labels.device.type == "cpu" and bool(((safe < 0) | (safe >= vocab)).any()):
        bad = target[mask & ((safe < 0) | (safe >= vocab))]
        raise ValueError(f"labels hold token ids outside [0, {vocab}) that are not ignore_index={ignore_index}, "
                         f"e.g. {int(bad[0])}")
    loss = per_sample_cross_entropy(logits.float().transpose(1, 2), safe)
    return loss.masked_fill(~mask, 0.0), mask


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
