"""Train each epoch on the hardest fraction of the data set only."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardmine._checks import check_number
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.policies.base import SubsetPolicy, top_samples
from hardmine.sampling.schedules import ScheduleLike


class TopKFractionPolicy(SubsetPolicy):
    """Each epoch, a shuffled pass over the `fraction` of samples with the highest difficulty (weights 1).

    fraction: in (0, 1] (schedulable: e.g. Linear(1.0, 0.3, epochs=10) narrows onto the hard cases slowly).
    Never-seen samples count as the hardest, so every sample is scored before it can be left out. With a
    class_balance guard the fraction is taken within each class.
    """

    name = "topk_fraction"
    calls = SubsetPolicy.calls | {"strata"}

    def __init__(self, fraction: ScheduleLike = 0.5, **base: Any) -> None:
        super().__init__(**base)
        self._schedule("fraction", fraction, 0.0, 1.0, low_inclusive=False)

    def epoch_subset(self, memory: ScoreMemory, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The hardest `fraction` (per class with class_balance), weight 1."""
        fraction = check_number("fraction", self.value("fraction"), 0.0, 1.0, low_inclusive=False)
        chosen = top_samples(self.difficulty(memory), fraction, self.strata(memory))
        return chosen, np.ones(chosen.size)
