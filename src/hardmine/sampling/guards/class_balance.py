"""ClassBalance ("ignoring class imbalance"): per-class quotas of the sampling mass."""

from __future__ import annotations

import numpy as np

from hardmine._checks import check_number
from hardmine.memory import ScoreMemory
from hardmine.sampling.guards.base import Guard


class ClassBalance(Guard):
    """Per-class quotas: class c receives a share of the sampling mass proportional to n_c^power.

    power: 0 gives every class an equal share (a rare class gets as many draws as a frequent one), 1 keeps each
    class's share of the data, so that a frequent class's hard samples cannot crowd out a rare class.
    Priority policies rescale each class's priorities once an epoch; subset policies that take a fraction of the
    data take it within each class (`strata`). Needs a ScoreMemory built with labels.
    """

    name = "class_balance"

    def __init__(self, power: float = 0.0) -> None:
        super().__init__()
        self._config = {"power": check_number("power", power, 0.0, 1.0)}
        self._state = {"factor": np.zeros(0, dtype=np.float64)}

    def start_epoch(self, epoch: int, memory: ScoreMemory, difficulty: np.ndarray) -> None:
        """A clear error when the memory has no labels."""
        if memory.labels is None:
            raise ValueError("class_balance needs class labels: build ScoreMemory(num_samples, labels=...)")

    def start_priorities(self, priorities: np.ndarray, labels: np.ndarray | None) -> None:
        """Per-class factors that bring each class's priority mass [N] to its quota."""
        classes = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=classes).astype(np.float64)
        mass = np.bincount(labels, weights=priorities, minlength=classes)
        quota = np.where(counts > 0, counts ** self._config["power"], 0.0)
        quota = quota / quota.sum() * mass.sum()
        self._state = {"factor": np.divide(quota, mass, out=np.zeros_like(quota), where=mass > 0)}

    def adjust_priorities(self, priorities: np.ndarray, indices: np.ndarray | None,
                          labels: np.ndarray | None) -> np.ndarray:
        """Priorities times their class's factor."""
        factor = self._state["factor"]
        if factor.size == 0:
            return priorities
        return priorities * factor[labels]

    def strata(self, labels: np.ndarray | None) -> np.ndarray | None:
        """The class labels: a subset policy takes its fraction within each class."""
        return labels
