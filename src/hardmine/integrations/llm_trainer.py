"""Token selection in HardMiningTrainer for causal LMs: `hardmine_tokens=TokenSelector(...)`,
`hardmine_reference=model_or_store`, checkpointed beside the sampler (`hardmine_tokens.pt`).

`TokenSelection` is a mixin of `hardmine.integrations.transformers.HardMiningTrainer` (it is one of its bases);
users never name it. `HardMiningSFTTrainer` is TRL's `SFTTrainer` with HardMiningTrainer's sampling and token
selection (`pip install hardmine[trl]`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

import hardmine as hm
from hardmine.llm import ReferenceModel, TokenLossStore, TokenSelector, sequence_losses, token_losses

TOKENS_FILE = "hardmine_tokens.pt"


def as_reference(reference: Any, device: torch.device) -> ReferenceModel | TokenLossStore | None:
    """`hardmine_reference` as a token-loss source: a ReferenceModel or TokenLossStore as given, a torch module
    wrapped in a ReferenceModel (moved to `device`, frozen), None as None."""
    if reference is None or isinstance(reference, (ReferenceModel, TokenLossStore)):
        return reference
    if isinstance(reference, nn.Module):
        reference.requires_grad_(False)
        return ReferenceModel(reference.to(device))
    raise TypeError(f"hardmine_reference must be a torch.nn.Module, a hardmine.llm.ReferenceModel or a "
                    f"TokenLossStore, got {type(reference).__name__}")


class TokenSelection:
    """The token-selection part of HardMiningTrainer (a mixin before `transformers.Trainer`).

    hardmine_tokens: a `hm.llm.TokenSelector`, or None (the default: whole-sequence losses as before).
    hardmine_reference: the reference of rule="excess_loss": a frozen causal LM (run on the fly under no_grad,
        its forwarded tokens counted), a `ReferenceModel`, or a `TokenLossStore` built over `trainer.train_dataset`
        (its row i is sample i). Required by "excess_loss", refused without a selector or with "top_loss".
    In a training step the batch's labels give token losses [B, T] (causal shift, -100 ignored); the sampler is
    updated with each sequence's mean label-token loss, the selector keeps its tokens and the loss is the sum over
    the kept tokens, times the sampler's importance weight of each sequence, over the number of kept tokens.
    """

    def __init__(self, *args: Any, hardmine_tokens: TokenSelector | None = None, hardmine_reference: Any = None,
                 **kwargs: Any) -> None:
        if hardmine_tokens is not None and not isinstance(hardmine_tokens, TokenSelector):
            raise TypeError(f"hardmine_tokens must be a hardmine.llm.TokenSelector, got "
                            f"{type(hardmine_tokens).__name__}")
        if hardmine_reference is not None and (hardmine_tokens is None or not hardmine_tokens.needs_reference):
            rule = None if hardmine_tokens is None else hardmine_tokens.rule
            raise ValueError(f"hardmine_reference is read only by hardmine_tokens=TokenSelector(rule='excess_loss'), "
                             f"got hardmine_tokens with rule {rule!r}")
        if hardmine_tokens is not None and hardmine_tokens.needs_reference and hardmine_reference is None:
            raise ValueError("hardmine_tokens with rule='excess_loss' needs hardmine_reference (a frozen model or a "
                             "TokenLossStore)")
        super().__init__(*args, **kwargs)
        self.hardmine_tokens = hardmine_tokens
        self.hardmine_reference = as_reference(hardmine_reference, self.args.device)

    def _hardmine_token_loss(self, index: torch.Tensor, inputs: Mapping[str, Any], labels: torch.Tensor,
                             outputs: Any) -> torch.Tensor:
        """The loss of a training batch under token selection (see the class docstring)."""
        if labels.ndim != 2 or index.shape[0] != labels.shape[0]:
            raise ValueError(f"token selection needs labels [B, T] with one row per sample, got labels "
                             f"{tuple(labels.shape)} for {index.shape[0]} samples (packing and padding_free join "
                             "samples into one row: turn them off)")
        loss, mask = token_losses(outputs.logits, labels)
        sampler = self.hardmine_sampler
        sampler.update(index, sequence_losses(loss.detach(), mask))
        reference = None
        if self.hardmine_reference is not None:
            reference = self.hardmine_reference.token_losses(inputs, labels, index)
        weights = self.hardmine_tokens(loss.detach(), mask, reference)
        return self.hardmine_tokens.reduce(loss, weights, sampler.weights(index).to(loss.device))

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Each training-loss log gets the selector's stats as `hardmine/tokens_<name>`."""
        if "loss" in logs and self.hardmine_tokens is not None:
            logs = {**logs, **{f"hardmine/tokens_{k}": v for k, v in self.hardmine_tokens.stats().items()}}
        super().log(logs, *args, **kwargs)

    def _hardmine_token_state(self) -> dict[str, Any]:
        reference = self.hardmine_reference
        return {"tokens": self.hardmine_tokens.state_dict(),
                "reference": reference.state_dict() if isinstance(reference, ReferenceModel) else None}

    def _save_checkpoint(self, model: nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.hardmine_tokens is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial),
                                  f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            hm.save_state(self._hardmine_token_state(), os.path.join(folder, TOKENS_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Restore the selector's counts (its warm-up) and the reference's forward count, checked first."""
        if self.hardmine_tokens is not None:
            path = os.path.join(resume_from_checkpoint, TOKENS_FILE)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"resume_from_checkpoint {resume_from_checkpoint!r} has no {TOKENS_FILE}: "
                                        "it was not written by a HardMiningTrainer with hardmine_tokens")
            state = hm.load_state(path)
            if not isinstance(state, dict) or set(state) != {"tokens", "reference"}:
                raise ValueError(f"{path} must hold keys ['reference', 'tokens']")
            reference = self.hardmine_reference
            TokenSelector(**self.hardmine_tokens.state_dict()["config"]).load_state_dict(state["tokens"])
            if isinstance(reference, ReferenceModel):  # both checked on copies before either is assigned
                ReferenceModel(nn.Identity()).load_state_dict(state["reference"])
                reference.load_state_dict(state["reference"])
            self.hardmine_tokens.load_state_dict(state["tokens"])
        super()._load_from_checkpoint(resume_from_checkpoint, model)
