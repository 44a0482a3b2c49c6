"""The reference model of a RHO-LOSS strategy in compare: trained on the validation split or by cross-fitting.

`reference=holdout` trains `make_model` on compare's validation split (clean labels: label noise is put on the
training part only; the validation split then also picks the target, so the reference has seen it) and scores the
training part; `reference=crossfit` trains one model on each half of the (possibly noisy) training part and scores
each half with the other half's model: the setting of a noisy holdout. Its cost joins the strategy's compute:
every sample each reference trains on, forwarded and back-propagated once an epoch, and one scoring forward of
every training sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hardmine._checks import check_choice
from hardmine.sampling.reference import cross_fit_losses, reference_losses, train_reference

REFERENCES = ("holdout", "crossfit")
REFERENCE_SEED_OFFSET = 20_000  # a reference model's seed: the run's seed plus this, apart from the run's own


@dataclass(frozen=True)
class ReferenceSpec:
    """How a strategy's irreducible losses are made: `kind` ("holdout" or "crossfit") and the reference's
    training `epochs`."""

    kind: str = "holdout"
    epochs: int = 5

    def __post_init__(self) -> None:
        check_choice("reference", self.kind, REFERENCES)
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"reference_epochs must be an integer >= 1, got {self.epochs!r}")


def irreducible_losses(spec: ReferenceSpec, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
                       y_val: np.ndarray, make_model: Callable[[], nn.Module],
                       make_optimizer: Callable, loss_fn: Callable, batch_size: int,
                       seed: int) -> tuple[np.ndarray, int, int]:
    """(irreducible losses [N] float32, samples forwarded, samples back-propagated) of the reference `spec`."""
    train = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    seed = seed + REFERENCE_SEED_OFFSET
    common = {"loss_fn": loss_fn, "optimizer": make_optimizer, "epochs": spec.epochs, "progress": False}
    if spec.kind == "holdout":
        holdout = TensorDataset(torch.from_numpy(x_val), torch.from_numpy(y_val))
        model = train_reference(make_model, holdout, batch_size=batch_size, seed=seed, **common)
        losses = reference_losses(model, train, loss_fn=loss_fn, progress=False)
        trained = spec.epochs * len(y_val)
    else:
        losses = cross_fit_losses(make_model, train, folds=2, seed=seed, **common)
        trained = spec.epochs * len(y_train)  # each half trains one reference
    return losses, trained + len(y_train), trained
