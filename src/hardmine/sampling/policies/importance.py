"""Importance sampling: P(i) ∝ (difficulty_i + eps)^alpha, mixed with a uniform floor, with unbiasing weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardmine._checks import check_number
from hardmine.sampling.policies.base import (
    PriorityPolicy,
    check_normalize,
    importance_weights,
)
from hardmine.sampling.schedules import ScheduleLike


class ImportancePolicy(PriorityPolicy):
    """Proportional prioritisation (Schaul et al. 2016; Katharopoulos & Fleuret 2018).

    Draw probability: P(i) = (1 - mix) * p_i / sum(p) + mix / N with p_i = (max(d_i, 0) + eps)^alpha, where
    d_i is the difficulty (the memory's statistic; never-seen samples get the largest value seen, so they
    are drawn early). Importance weights: w_i = (N * P(i))^-beta; beta = 1 makes the weighted mean loss an
    unbiased estimate of the uniform mean loss (and the expected weight 1), beta = 0 turns the correction off.
    normalize="none" (the default) keeps them unbiased: the expected weight is 1, so the effective learning rate is
    the one the optimiser was given. normalize="max" divides them by the batch's largest weight, as prioritised
    experience replay (Schaul et al.) does, so they only scale updates down: the effective learning rate drops by the
    mean weight (0.48 measured on digits), and the variant ended below uniform in our Fashion-MNIST comparisons.

    alpha: >= 0 (schedulable), how strongly difficulty skews sampling (0 is uniform with replacement).
    beta: in [0, 1] (schedulable; anneal it to 1, e.g. Linear(0.4, 1.0, epochs)), how much bias is corrected.
    mix: in [0, 1], the uniform fraction of each batch (a coverage floor against forgetting easy samples).
    eps: > 0, keeps every sample drawable.
    """

    name = "importance"
    monotone = True
    weights_rows = True

    def __init__(self, alpha: ScheduleLike = 1.0, beta: ScheduleLike = 1.0, mix: float = 0.1, eps: float = 1e-3,
                 normalize: str = "none", **base: Any) -> None:
        super().__init__(**base)
        self._schedule("alpha", alpha, 0.0, 16.0)
        self._schedule("beta", beta, 0.0, 1.0)
        self.mix = check_number("mix", mix, 0.0, 1.0)
        self.eps = check_number("eps", eps, 0.0, np.inf, low_inclusive=False, high_inclusive=False)
        self.normalize = check_normalize(normalize)

    def priority(self, difficulty: np.ndarray) -> np.ndarray:
        """(max(d, 0) + eps)^alpha [B] or [N], float64."""
        return (np.maximum(difficulty, 0.0) + self.eps) ** self.value("alpha")

    def weights(self, probabilities: np.ndarray, num_samples: int) -> np.ndarray:
        """(N * P)^-beta [B] (or [K, B], a batch a row), divided by the batch's maximum when normalize="max",
        then capped by guards."""
        # beta's schedule was checked to stay in [0, 1] over its whole course when it was set
        return self.cap(importance_weights(probabilities, num_samples, self.value("beta"), self.normalize))
