"""TokenSelector: which tokens of a batch to back-propagate, by loss (OHEM on tokens) or by excess loss (Rho-1)."""

from __future__ import annotations

from typing import Any

import torch

from hardmine._checks import check_choice, check_int, check_number
from hardmine.inbatch.reduction import reduce
from hardmine.llm.token_loss import check_token_shapes
from hardmine.state import Int, Stateful

RULES = ("top_loss", "excess_loss")
SCOPES = ("batch", "sequence")


class TokenSelector(Stateful):
    """Token weights [B, T] (1 on the kept tokens, 0 elsewhere and on padding) from token losses.

    keep: in (0, 1], the fraction of valid tokens kept: ceil(keep * n) of the n valid tokens of the batch
        (scope="batch") or of each sequence (scope="sequence").
    rule: "top_loss" keeps the highest losses (OHEM on tokens); "excess_loss" keeps the highest loss minus a
        reference model's loss of the same token (Rho-1, Lin et al. 2024): tokens that are learnable (the
        reference fits them) and not yet learnt; noise the reference cannot fit either scores about 0.
    scope: "batch" ranks all valid tokens of the batch together, as Rho-1 does (a sequence of easy or noisy
        tokens may lose all of them); "sequence" keeps the same fraction of every sequence.
    warmup: the first `warmup` calls (training steps) keep every valid token.
    Ties are broken by position (row-major, earlier first), so the selection is deterministic. A batch with no
    valid token gets weights of 0 everywhere and `reduce` gives 0 (no NaN). The call counts steps and tokens
    (on the device, without waiting for it), which `state_dict()` saves (for exact resume across the warm-up)
    and `stats()` reports.

        loss, mask = hm.llm.token_losses(outputs.logits, labels)
        weights = selector(loss.detach(), mask, reference_loss)      # reference: hm.llm.ReferenceModel or a store
        selector.reduce(loss, weights).backward()                    # mean over the kept tokens
    """

    def __init__(self, keep: float, rule: str = "excess_loss", scope: str = "batch", warmup: int = 0) -> None:
        self.keep = check_number("keep", keep, 0.0, 1.0, low_inclusive=False)
        self.rule, self.scope = check_choice("rule", rule, RULES), check_choice("scope", scope, SCOPES)
        self.warmup = check_int("warmup", warmup, minimum=0)
        self.steps = 0
        self._counts = torch.zeros(2, dtype=torch.int64)  # valid, selected; on the device of the last batch

    @property
    def valid_tokens(self) -> int:
        """Valid tokens seen since the start (reading it waits for the device)."""
        return int(self._counts[0])

    @property
    def selected_tokens(self) -> int:
        """Tokens selected since the start."""
        return int(self._counts[1])

    @property
    def needs_reference(self) -> bool:
        """Whether the rule reads a reference model's token losses ("excess_loss")."""
        return self.rule == "excess_loss"

    def scores(self, token_loss: torch.Tensor, reference_loss: torch.Tensor | None) -> torch.Tensor:
        """The selection score [B, T] (higher is kept first), without gradient: the loss, or loss - reference."""
        loss = token_loss.detach().float()
        return loss - reference_loss.detach().to(loss.device, torch.float32) if self.needs_reference else loss

    def __call__(self, token_loss: torch.Tensor, mask: torch.Tensor,
                 reference_loss: torch.Tensor | None = None) -> torch.Tensor:
        """Weights [B, T] of token_loss's dtype and device: 1 on the selected tokens, 0 elsewhere.

        token_loss: [B, T] float (with or without gradient; it is not changed); mask: [B, T] bool, True on the
        tokens that have a label; reference_loss: [B, T], required by rule="excess_loss" (values where the mask is
        False are ignored), refused by "top_loss". Counts one step.
        """
        check_token_shapes(token_loss, mask, reference_loss)
        if self.needs_reference and reference_loss is None:
            raise ValueError("rule='excess_loss' needs reference_loss [B, T] (a reference model's token losses)")
        if not self.needs_reference and reference_loss is not None:
            raise ValueError("rule='top_loss' takes no reference_loss; use rule='excess_loss' to subtract it")
        mask = mask.to(device=token_loss.device, dtype=torch.bool)
        score = self.scores(token_loss, reference_loss)
        _check_finite(score, mask)
        if self.steps < self.warmup or self.keep == 1.0:
            chosen = mask
        else:
            chosen = _top_fraction(score, mask, self.keep, per_row=self.scope == "sequence")
        self.steps += 1
        self._counts = self._counts.to(mask.device) + torch.stack((mask.sum(), chosen.sum()))  # no host sync
        return chosen.to(token_loss.dtype)

    @staticmethod
    def reduce(token_loss: torch.Tensor, weights: torch.Tensor,
               sequence_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The loss to back-propagate: sum of token_loss * weights over the batch divided by the number of kept
        tokens (Rho-1's normalisation; 0 when none is kept). sequence_weights [B] (a sampler's importance
        weights) multiply each row and are not counted in the divisor."""
        mean = reduce(token_loss, weights, normalize="weighted")
        if sequence_weights is None:
            return mean
        rows = sequence_weights.to(token_loss.device, token_loss.dtype).reshape(-1, 1)
        return reduce(token_loss, weights, rows, normalize="sum") / weights.sum().clamp_min(1.0)

    def stats(self) -> dict[str, float]:
        """keep_ratio: selected over valid tokens since the start; steps: calls so far."""
        return {"keep_ratio": self.selected_tokens / max(self.valid_tokens, 1), "steps": float(self.steps)}

    # state: the step and token counts (saved with the constructor's arguments by the Stateful base)
    state_fields = {"steps": Int(0), "valid_tokens": Int(0), "selected_tokens": Int(0)}

    def _state_values(self) -> dict[str, Any]:
        return {"steps": self.steps, "valid_tokens": self.valid_tokens, "selected_tokens": self.selected_tokens}

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        if values["selected_tokens"] > values["valid_tokens"]:
            raise ValueError(f"TokenSelector state has selected_tokens {values['selected_tokens']} > valid_tokens "
                             f"{values['valid_tokens']}")
        return values

    def _assign_state(self, values: dict[str, Any]) -> None:
        self.steps = values["steps"]
        self._counts = torch.tensor([values["valid_tokens"], values["selected_tokens"]], dtype=torch.int64)


def _check_finite(score: torch.Tensor, mask: torch.Tensor) -> None:
    """Raise (a device-side assert on an accelerator) when a valid token's score is NaN or infinite."""
    ok = torch.isfinite(score).logical_or(~mask).all()
    message = "token_loss (minus reference_loss) must be finite on the tokens the mask keeps"
    if score.device.type == "cpu":
        if not ok:
            raise ValueError(f"{message}: {int((~torch.isfinite(score) & mask).sum())} are not")
    else:
        torch._assert_async(ok, message)


def _top_fraction(score: torch.Tensor, mask: torch.Tensor, keep: float, per_row: bool) -> torch.Tensor:
    """Bool [B, T]: the ceil(keep * n) highest scores among the n valid tokens of each row (per_row) or of the
    whole batch, ties to the earlier position; computed on the device, without a host synchronisation."""
    rows = score if per_row else score.reshape(1, -1)
    valid = mask if per_row else mask.reshape(1, -1)
    ranked = rows.masked_fill(~valid, -torch.inf)
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1], device=order.device)
                                            .expand_as(order).contiguous())
    count = torch.ceil(valid.sum(1, keepdim=True).double() * keep - 1e-9).long()
    return ((rank < count) & valid).reshape(score.shape)
