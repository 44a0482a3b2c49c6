"""Rank-based selection (Loshchilov & Hutter 2015): P ∝ exp(-rank * ln(s) / N), hardest first in rank."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hardmine._checks import check_number
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.policies.base import (
    PriorityPolicy,
    check_normalize,
    importance_weights,
)
from hardmine.sampling.schedules import ScheduleLike
from hardmine.state import Array


class RankPolicy(PriorityPolicy):
    """Online batch selection by rank: the hardest sample is `pressure` times as likely as the easiest.

    Ranks (0 = hardest) are taken against the difficulties sorted at the epoch's start; a sample scored during
    the epoch is re-ranked against that snapshot in O(log N). Being rank-based, it is insensitive to the scale
    and outliers of the scores, unlike proportional importance sampling.

    pressure: s >= 1 (schedulable: the paper anneals it, e.g. Step(1e2, 0.5, every=1, low=1.0)).
    mix: the uniform fraction of each batch; beta, normalize: importance correction as in ImportancePolicy
        (beta = 0, the default, trains on the ranked distribution as the paper does; normalize="none", the default,
        keeps the weights unbiased when beta > 0).
    """

    name = "rank"
    monotone = True
    weights_rows = True
    state_fields = {"sorted": Array("float64", "N", empty_ok=True)}

    def __init__(self, pressure: ScheduleLike = 100.0, mix: float = 0.0, beta: ScheduleLike = 0.0,
                 normalize: str = "none", **base: Any) -> None:
        super().__init__(**base)
        self._schedule("pressure", pressure, 1.0, math.inf, high_inclusive=False)
        self._schedule("beta", beta, 0.0, 1.0)
        self.mix = check_number("mix", mix, 0.0, 1.0)
        self.normalize = check_normalize(normalize)
        self._state["sorted"] = np.zeros(0, dtype=np.float64)

    def prepare(self, epoch: int, memory: ScoreMemory) -> None:
        """Snapshot the sorted difficulties [N] that ranks are taken against."""
        self._state["sorted"] = np.sort(self.difficulty(memory))

    def priority(self, difficulty: np.ndarray) -> np.ndarray:
        """exp(-rank * ln(s) / N) [B] or [N], rank = how many snapshot difficulties are strictly larger."""
        snapshot = self._state["sorted"]
        n = snapshot.size
        rank = n - np.searchsorted(snapshot, difficulty, side="right")
        return np.exp(-rank * math.log(self.value("pressure")) / max(n, 1))

    def weights(self, probabilities: np.ndarray, num_samples: int) -> np.ndarray:
        """(N * P)^-beta [B] (or [K, B], a batch a row) (ones with beta = 0), then capped by guards."""
        return self.cap(importance_weights(probabilities, num_samples, self.value("beta"), self.normalize))
