"""Importance sampling: P(i) ∝ (score_i + eps)^alpha, mixed with a uniform floor, with unbiasing weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardmine._checks import check_fraction
from hardmine.memory import ScoreMemory
from hardmine.policies.base import Policy

_STATISTICS = ("score", "ema")
_NORMALIZE = ("max", "none")


class ImportancePolicy(Policy):
    """Proportional prioritisation (Schaul et al. 2016; Katharopoulos & Fleuret 2018).

    Draw probability: P(i) = (1 - mix) * p_i / sum(p) + mix / N with p_i = (max(s_i, 0) + eps)^alpha, where
    s_i is the memory's `statistic` ("score": the latest, or "ema"). A sample never scored gets the largest score
    seen when the epoch started (1.0 before anything was seen), so it is drawn early.
    Importance weights: w_i = (N * P(i))^-beta; beta = 1 makes the weighted mean loss an unbiased estimate of
    the uniform mean loss (and the expected weight 1), beta = 0 turns the correction off. normalize="max"
    divides them by the batch's largest weight, as prioritised replay does, so they only scale updates down
    (the effective learning rate drops by the mean weight); normalize="none" keeps them unbiased.

    alpha: >= 0, how strongly difficulty skews sampling (0 is uniform with replacement).
    beta: in [0, 1], how much of the bias the weights correct.
    mix: in [0, 1], the uniform fraction of each batch (a coverage floor against forgetting easy samples).
    eps: > 0, keeps every sample drawable.
    statistic: "score" or "ema".
    normalize: "max" or "none".
    """

    name = "importance"

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, mix: float = 0.1, eps: float = 1e-3,
                 statistic: str = "score", normalize: str = "max") -> None:
        self.alpha = check_fraction("alpha", alpha, 0.0, 16.0)
        self.beta = check_fraction("beta", beta, 0.0, 1.0)
        self.mix = check_fraction("mix", mix, 0.0, 1.0)
        self.eps = check_fraction("eps", eps, 0.0, np.inf, low_inclusive=False, high_inclusive=False)
        if statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")
        self.statistic = statistic
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
        self.normalize = normalize
        self._unseen_score = 1.0

    def start_epoch(self, epoch: int, memory: ScoreMemory) -> None:
        """Fix the score given to never-seen samples for this epoch: the largest score seen so far."""
        values = memory.get(self.statistic)
        seen = memory.get("seen") > 0
        self._unseen_score = float(values[seen].max()) if seen.any() else 1.0

    def priorities(self, memory: ScoreMemory, indices: np.ndarray | None = None) -> np.ndarray:
        """(max(s, 0) + eps)^alpha [B] or [N], float64."""
        values = memory.get(self.statistic, indices).astype(np.float64)
        seen = memory.get("seen", indices) > 0
        values = np.where(seen, values, self._unseen_score)
        return (np.maximum(values, 0.0) + self.eps) ** self.alpha

    def weights(self, probabilities: np.ndarray, num_samples: int) -> np.ndarray:
        """(N * P)^-beta [B], float64, divided by the batch's maximum when normalize="max"."""
        w = (num_samples * probabilities) ** (-self.beta)
        return w / w.max() if self.normalize == "max" else w

    def state_dict(self) -> dict[str, Any]:
        """Parameters and the unseen-sample score fixed at the start of the epoch."""
        return {"alpha": self.alpha, "beta": self.beta, "mix": self.mix, "eps": self.eps,
                "statistic": self.statistic, "normalize": self.normalize, "_unseen_score": self._unseen_score}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; checked before anything changes."""
        fresh = ImportancePolicy(**{k: v for k, v in state.items() if not k.startswith("_")})
        unseen = check_fraction("state['_unseen_score']", state["_unseen_score"], -np.inf, np.inf,
                                low_inclusive=False, high_inclusive=False)
        self.__dict__.update(fresh.__dict__)
        self._unseen_score = unseen
