"""RHO-LOSS (Mindermann et al. 2022): of each candidate batch, back-propagate the highest reducible loss."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardmine._checks import check_values, to_numpy
from hardmine.sampling.memory import Column, ScoreMemory
from hardmine.sampling.policies.candidates import CandidatePolicy

IRREDUCIBLE_LOSS = Column("irreducible_loss", np.float32, np.nan, source=None)
"""The per-sample loss [N] of a reference model ("irreducible loss"), fixed, set once, checkpointed with the memory."""


def check_irreducible_loss(values: Any, num_samples: int | None = None) -> np.ndarray:
    """`values` as a float32 array [N] of finite, non-negative losses (of length `num_samples` when given)."""
    arr = to_numpy(values)
    if arr.ndim != 1:
        raise ValueError(f"irreducible_loss must be 1-D [N], got shape {tuple(arr.shape)}")
    length = arr.shape[0] if num_samples is None else num_samples
    if arr.shape[0] != length:
        raise ValueError(f"irreducible_loss has length {arr.shape[0]} but the memory holds {num_samples} samples")
    arr = check_values("irreducible_loss", arr, length, nonnegative=True)
    return arr.astype(np.float32)


class RhoLossPolicy(CandidatePolicy):
    """Candidate-batch selection by reducible loss: training loss minus the irreducible loss of a reference model
    (`hm.build_policy("rho_loss", irreducible_loss=il, candidates=5)`, il [N] from `hm.reference_losses`,
    `hm.cross_fit_losses` or a model trained on a clean set). Points that are learnable, worth learning and not yet
    learnt score high; points a reference model cannot fit either (noise, ambiguity) do not.

    irreducible_loss: [N] finite non-negative floats, written into the memory's "irreducible_loss" column when a
        sampler takes the policy (and checkpointed with the memory); None reads a column the user set with
        `memory.set("irreducible_loss", il)` (after `memory.declare(IRREDUCIBLE_LOSS)`) or loaded from a checkpoint.
    Failure mode: with a noisy reference set, the trained model grows confidently right on mislabeled samples and
    their reducible loss grows; pass `guards=[NoiseGuard()]` so that suspects are scored at the median loss.
    Other parameters: see CandidatePolicy.
    """

    name = "rho_loss"
    columns = (IRREDUCIBLE_LOSS,)
    config_exclude = ("irreducible_loss",)  # data [N]: written into the memory's column, saved with the memory
    keep_on_load = ("_memory",)  # the memory it reads the irreducible losses from

    def __init__(self, irreducible_loss: Any = None, candidates: int = 5, **rest: Any) -> None:
        super().__init__(candidates=candidates, **rest)
        self._irreducible_loss = None if irreducible_loss is None else check_irreducible_loss(irreducible_loss)
        self._memory: ScoreMemory | None = None

    def attach(self, memory: ScoreMemory) -> None:
        """Check the irreducible losses against the memory's length, declare the column, write them."""
        if self._irreducible_loss is not None:
            check_irreducible_loss(self._irreducible_loss, memory.num_samples)
        super().attach(memory)
        if self._irreducible_loss is not None:
            memory.set(IRREDUCIBLE_LOSS.name, self._irreducible_loss)
        self._memory = memory

    def prepare(self, epoch: int, memory: ScoreMemory) -> None:
        """Refuse an epoch that selects (not a warm-up one) whose irreducible losses are missing (NaN) or negative."""
        self._memory = memory
        if self.in_warmup(epoch):
            return
        il = memory.get(IRREDUCIBLE_LOSS.name)
        bad = ~(il >= 0)
        if bad.any():
            raise ValueError(f"the memory's irreducible_loss column is missing or negative for {int(bad.sum())} "
                             f"samples (e.g. index {int(np.flatnonzero(bad)[0])}): pass irreducible_loss=[N] to "
                             "the rho_loss policy, or memory.set('irreducible_loss', hm.reference_losses(...))")

    def score(self, losses: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Reducible loss [C]: the (guarded) training loss minus the irreducible loss of each candidate."""
        if self._memory is None:
            raise RuntimeError("rho_loss selects only through a HardExampleSampler that took it")
        return losses - self._memory.get(IRREDUCIBLE_LOSS.name, indices).astype(np.float64)
