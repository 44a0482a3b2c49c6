"""Self-paced learning (Kumar et al. 2010): easy samples first, the admitted difficulty grows over time."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hardmine._checks import check_number
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.policies.base import SubsetPolicy, top_samples
from hardmine.sampling.schedules import ScheduleLike, Step
from hardmine.state import Float


class SelfPacedPolicy(SubsetPolicy):
    """Each epoch, a pass over the samples whose difficulty is below `threshold` (the model's "age" lambda).

    threshold: lambda (schedulable; the default starts at 0.5 and grows by 1.3 an epoch, the paper's
        annealing of 1/K). Samples never scored are admitted, so they get a score.
    min_fraction: when fewer samples qualify, the easiest `min_fraction` of the data are used instead.
    This is the opposite pressure to hard example mining; see also `curriculum`.
    """

    name = "self_paced"
    state_fields = {"admitted": Float(0.0, 1.0)}

    def __init__(self, threshold: ScheduleLike = Step(0.5, 1.3), min_fraction: float = 0.1, **base: Any) -> None:
        super().__init__(**base)
        self._schedule("threshold", threshold, 0.0, math.inf)  # it may grow without bound
        self.min_fraction = check_number("min_fraction", min_fraction, 0.0, 1.0, low_inclusive=False)
        self._state["admitted"] = 1.0

    def epoch_subset(self, memory: ScoreMemory, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Samples below lambda (or never seen), at least the easiest min_fraction; weight 1."""
        difficulty = self.difficulty(memory)
        unseen = memory.get("seen") == 0
        chosen = np.flatnonzero((difficulty < self.value("threshold")) | unseen).astype(np.int64)
        if chosen.size < self.min_fraction * difficulty.size:
            chosen = top_samples(-difficulty, self.min_fraction)
        self._state["admitted"] = chosen.size / difficulty.size
        return chosen, np.ones(chosen.size)

    def stats(self) -> dict[str, float]:
        """The fraction of the data admitted this epoch."""
        return {"keep_ratio": float(self._state["admitted"])}
