"""A new priority policy in one file: Boltzmann sampling, P(i) ∝ exp(difficulty_i / temperature).

Subclassing PriorityPolicy with a `name` registers it, so it is usable by name once this file is imported:
    hm.build_policy("boltzmann", temperature=0.5)
    hardmine --plugin examples/custom_policy.py compare --dataset digits --strategies uniform,boltzmann
and `hardmine.testing.check_policy(BoltzmannPolicy)` runs the library's conformance checks against it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import hardmine as hm
from hardmine.checks import check_number
from hardmine.state import Float


class BoltzmannPolicy(hm.PriorityPolicy):
    """Draws sample i with probability ∝ exp(d_i / temperature) (a uniform `mix` of each batch aside).

    temperature: > 0 (schedulable); small values concentrate on the hardest samples, large ones approach uniform.
    mix: in [0, 1], the uniform fraction of each batch.
    """

    name = "boltzmann"
    state_fields = {"top": Float()}  # what this class adds to self._state, checked when a checkpoint loads

    def __init__(self, temperature: hm.schedules.ScheduleLike = 1.0, mix: float = 0.1, **base: Any) -> None:
        super().__init__(**base)
        check_number("temperature", self._schedule("temperature", temperature)(0.0), 0.0, np.inf,
                       low_inclusive=False, high_inclusive=False)
        self.mix = check_number("mix", mix, 0.0, 1.0)
        self._state["top"] = 0.0

    def prepare(self, epoch: int, memory: hm.ScoreMemory) -> None:
        """The largest difficulty at the epoch's start, subtracted so that exp() cannot overflow."""
        self._state["top"] = float(self.difficulty(memory).max())

    def priority(self, difficulty: np.ndarray) -> np.ndarray:
        """exp((d - top) / temperature) [B] or [N], at most exp(0) = 1 for samples scored by then."""
        return np.exp(np.minimum(difficulty - self._state["top"], 0.0) / self.value("temperature"))
