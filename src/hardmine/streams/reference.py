"""The irreducible losses of RHO-LOSS on a stream: a reference model scored on each candidate batch as it comes
(or a callable), handed to the rho_loss policy in place of the memory column it reads on a data set of known N."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from hardmine._checks import check_values
from hardmine.inbatch.losses import per_sample_cross_entropy
from hardmine.sampling.memory import Column

Reference = nn.Module | Callable[[Any], Any]


def _model_losses(model: nn.Module, batch: Any) -> torch.Tensor:
    """Per-sample cross-entropy [C] of `model` on a batch (inputs, targets, ...), without gradient, in eval mode."""
    if not (isinstance(batch, (tuple, list)) and len(batch) >= 2):
        raise TypeError("a reference model scores batches (inputs, targets, ...); for another batch structure "
                        "pass reference=callable(batch) -> per-sample losses [C]")
    inputs, targets = batch[0], batch[1]
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return per_sample_cross_entropy(model(inputs), targets)
    finally:
        model.train(training)


class StreamReference:
    """Irreducible losses [C] of each candidate batch, from `reference`: an `nn.Module` (cross-entropy of its
    logits on a batch `(inputs, targets, ...)`, no gradient) or a callable `batch -> losses [C]` (finite, >= 0).

    It stands in for the score memory a rho_loss policy is attached to: the stream calls `score(ids, batch)`
    before the policy selects, and the policy's `score` reads the values back through `get(name, ids)`.
    """

    def __init__(self, reference: Reference) -> None:
        if not (isinstance(reference, nn.Module) or callable(reference)):
            raise TypeError(f"reference must be an nn.Module or a callable batch -> losses [C], got "
                            f"{type(reference).__name__}")
        self.reference = reference
        self._ids = np.zeros(0, dtype=np.int64)
        self._values = np.zeros(0, dtype=np.float64)

    num_samples = None  # a stream has no N

    def declare(self, column: Column) -> None:
        """What a policy's `attach` calls: the column is held here per batch, nothing to declare."""

    def set(self, name: str, values: Any) -> None:
        """What `attach` calls for a rho_loss policy given irreducible losses [N]: refused, a stream has no N."""
        raise ValueError("rho_loss on a stream scores its reference on each candidate batch: pass "
                         "HardStream(reference=model or callable), not irreducible_loss=[N] to the policy")

    def score(self, ids: np.ndarray, batch: Any) -> np.ndarray:
        """Irreducible losses (float64 [C]) of the candidate batch `batch` whose stream ids are `ids` [C]."""
        ref = self.reference
        raw = _model_losses(ref, batch) if isinstance(ref, nn.Module) else ref(batch)
        values = check_values("the reference's losses", raw, ids.size, indices=ids, nonnegative=True)
        self._ids, self._values = ids, values.copy()
        return self._values

    def get(self, name: str, indices: np.ndarray) -> np.ndarray:
        """The irreducible losses of `indices` (ids of the batch last scored)."""
        if indices.size != self._ids.size or not np.array_equal(indices, self._ids):
            raise RuntimeError("the rho_loss policy selects from the batch the stream scored last")
        return self._values
