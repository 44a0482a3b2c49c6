"""WeightCap ("destabilize optimization"): importance weights clipped at a maximum."""

from __future__ import annotations

import math

import numpy as np

from hardmine._checks import check_number
from hardmine.sampling.guards.base import Guard


class WeightCap(Guard):
    """Clips importance weights at `max_weight`: a rare sample drawn once cannot dominate an update."""

    name = "weight_cap"

    def __init__(self, max_weight: float = 10.0) -> None:
        super().__init__()
        self.max_weight = check_number("max_weight", max_weight, 0.0, math.inf, low_inclusive=False,
                                       high_inclusive=False)

    def adjust_weights(self, weights: np.ndarray) -> np.ndarray:
        """min(w, max_weight) [B]."""
        return np.minimum(weights, self.max_weight)
