"""CoverageGuard ("reduce coverage of easy but important cases"): a uniform floor, and every sample drawn at
least once every K epochs."""

from __future__ import annotations

import numpy as np

from hardmine._checks import check_int, check_number
from hardmine.sampling.guards.base import Guard
from hardmine.sampling.memory import ScoreMemory
from hardmine.state import Array, Field


class CoverageGuard(Guard):
    """Keeps easy samples in play: a uniform floor `mix`, and (with `every`) each sample drawn once every K epochs.

    mix: in [0, 1]; priority policies draw at least this fraction of each batch uniformly, subset policies add
        this fraction of the samples they left out.
    every: K epochs; at each epoch's start, the samples not scored in the last K epochs are put first.
    """

    name = "coverage"
    state_fields = {"starts": Field("pairs"), "overdue": Array("int64", low=0, below="N")}

    def __init__(self, mix: float = 0.1, every: int | None = None) -> None:
        super().__init__()
        self.mix = check_number("mix", mix, 0.0, 1.0)
        """The uniform floor."""
        self.every = None if every is None else check_int("every", every)
        self._state = {"starts": [], "overdue": np.zeros(0, dtype=np.int64)}

    def start_epoch(self, epoch: int, memory: ScoreMemory, difficulty: np.ndarray) -> None:
        """Remember the step at which this epoch starts; list the samples not scored since epoch e - K + 1."""
        starts = {int(e): int(s) for e, s in self._state["starts"]}
        starts[epoch] = memory.updates
        every = self.every
        overdue = np.zeros(0, dtype=np.int64)
        if every is not None and epoch - every + 1 in starts:
            overdue = np.flatnonzero(memory.get("last_step") < starts[epoch - every + 1]).astype(np.int64)
        kept = sorted(starts.items())[-(every or 1):]
        self._state = {"starts": [list(pair) for pair in kept], "overdue": overdue}

    def adjust_mix(self, mix: float) -> float:
        """At least this guard's floor."""
        return max(mix, self.mix)

    def forced(self) -> np.ndarray:
        """The overdue samples: not scored in the last K epochs."""
        return self._state["overdue"]

    def adjust_subset(self, subset: np.ndarray, weights: np.ndarray, num_samples: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Add the overdue samples and a `mix` fraction of the left-out ones, at weight 1."""
        left_out = np.setdiff1d(np.arange(num_samples), subset)
        extra = left_out[rng.random(left_out.size) < self.mix]
        extra = np.union1d(extra, np.setdiff1d(self._state["overdue"], subset))
        merged = np.concatenate([subset, extra])
        order = np.argsort(merged, kind="stable")
        return merged[order], np.concatenate([weights, np.ones(extra.size)])[order]
