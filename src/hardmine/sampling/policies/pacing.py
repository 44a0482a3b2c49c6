"""Curricula with a pacing function, and one `pressure` knob from easy-first to hard-first."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hardmine._checks import check_int, check_number
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.policies.base import SubsetPolicy, top_samples
from hardmine.state import Float


class PacingPolicy(SubsetPolicy):
    """Each epoch, a pass over a growing part of the data ordered by difficulty (Hacohen & Weinshall 2019).

    The part's size follows the exponential pacing function g(epoch) = min(1, start * growth^floor(epoch /
    step_length)) of the data. Which samples: the highest of key = pressure * r + (1 - |pressure|) * u, with r
    the difficulty's rank in [0, 1] (1 = hardest) and u uniform noise. pressure = -1 is a curriculum (easiest
    first, the pressure of self-paced learning), +1 an anti-curriculum (hardest first, the pressure of hard
    example mining), 0 a random part; values between blend the two.
    """

    name = "pacing"
    state_fields = {"fraction": Float(0.0, 1.0)}
    calls = SubsetPolicy.calls | {"strata"}

    def __init__(self, pressure: float = -1.0, start: float = 0.2, growth: float = 1.5, step_length: int = 1,
                 **base: Any) -> None:
        super().__init__(**base)
        self.pressure = check_number("pressure", pressure, -1.0, 1.0)
        self.start = check_number("start", start, 0.0, 1.0, low_inclusive=False)
        self.growth = check_number("growth", growth, 1.0, math.inf, high_inclusive=False)
        self.step_length = check_int("step_length", step_length)
        self._state["fraction"] = self.start

    def fraction(self, epoch: int) -> float:
        """g(epoch), the part of the data used in `epoch`."""
        return min(1.0, self.start * self.growth ** (epoch // self.step_length))

    def epoch_subset(self, memory: ScoreMemory, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The g(epoch) part of the data with the highest key (per class with class_balance); weight 1."""
        difficulty = self.difficulty(memory)
        noise = rng.random(difficulty.size)
        order = np.lexsort((noise, difficulty))  # ties in difficulty broken at random
        rank = np.empty(difficulty.size)
        rank[order] = np.arange(difficulty.size) / max(difficulty.size - 1, 1)
        key = self.pressure * rank + (1.0 - abs(self.pressure)) * noise
        fraction = self.fraction(max(self._state["epoch"], 0))
        self._state["fraction"] = fraction
        chosen = top_samples(key, fraction, self.strata(memory))
        return chosen, np.ones(chosen.size)

    def stats(self) -> dict[str, float]:
        """The part of the data used this epoch."""
        return {"keep_ratio": float(self._state["fraction"])}


class CurriculumPolicy(PacingPolicy):
    """A curriculum: easiest first (pressure -1 by default), the part of the data growing by the pacing function."""

    name = "curriculum"


class AntiCurriculumPolicy(PacingPolicy):
    """An anti-curriculum: hardest first (pressure +1 by default)."""

    name = "anti_curriculum"

    def __init__(self, pressure: float = 1.0, **kwargs: Any) -> None:
        super().__init__(pressure=pressure, **kwargs)
