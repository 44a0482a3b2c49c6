"""A frozen reference model's token losses, computed on the fly (no gradient), its forwards counted."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hardmine.llm.token_loss import IGNORE_INDEX, token_losses
from hardmine.state import Int, Stateful


class ReferenceModel(Stateful):
    """Token losses [B, T] of a frozen causal LM, for `TokenSelector(rule="excess_loss")`.

    model: a causal LM whose call `model(**inputs)` returns an object with `.logits` [B, T, V] (a transformers
        model) or the logits themselves. It is put in eval mode and never trained here (the caller keeps it
        frozen); its forwards run under `torch.no_grad()`.
    Each call counts the tokens it forwarded (B x T, padding included) in `forward_tokens`, the reference's
    share of the compute; `state_dict()` saves the count (not the model: pass the same model when resuming).
    """

    def __init__(self, model: nn.Module, ignore_index: int = IGNORE_INDEX) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model, self.ignore_index = model.eval(), ignore_index
        self.forward_tokens = 0

    def token_losses(self, inputs: Mapping[str, Any], labels: torch.Tensor,
                     sample_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Reference loss [B, T] of the batch `inputs` (input_ids, attention_mask, ... as the model takes them)
        against its unshifted labels [B, T]; 0 where the label is ignore_index. sample_ids are not used."""
        if not isinstance(inputs, Mapping) or "input_ids" not in inputs:
            raise ValueError(f"inputs must be a mapping with 'input_ids', got "
                             f"{sorted(inputs) if isinstance(inputs, Mapping) else type(inputs).__name__}")
        with torch.no_grad():
            outputs = self.model(**inputs)
        logits = outputs.logits if hasattr(outputs, "logits") else outputs
        loss, _ = token_losses(logits, labels.to(logits.device), self.ignore_index)
        self.forward_tokens += int(inputs["input_ids"].numel())
        return loss

    # state: the forward count; the model is not saved (pass the same model when resuming)
    state_fields = {"forward_tokens": Int(0)}
    save_config = False
