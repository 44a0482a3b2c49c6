"""The uniform policy: a seeded shuffle per epoch, every sample once; the baseline every strategy is compared to."""

from __future__ import annotations

import numpy as np

from hardmine.memory import ScoreMemory
from hardmine.policies.base import Policy


class UniformPolicy(Policy):
    """Plain shuffling without replacement (what `DataLoader(shuffle=True)` does); importance weights are 1."""

    name = "uniform"
    with_replacement = False

    def priorities(self, memory: ScoreMemory, indices: np.ndarray | None = None) -> np.ndarray:
        """Equal priorities: ones [B] or [N]."""
        n = memory.num_samples if indices is None else len(indices)
        return np.ones(n, dtype=np.float64)
