"""Candidate filters: the rank window and the score/margin tests that keep likely false negatives out.

Applied in a fixed order, each counting only what it drops among the candidates still alive, so that per query
`candidates == kept + sum(dropped)`. Thresholds are compared in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FILTER_ORDER = ("max_score", "min_score", "absolute_margin", "relative_margin")
#: "ranks" (hardmine's rule): the window [range_min, range_max) is counted over the ranked candidates before the
#: score filters, which then drop inside it. "survivors" (sentence-transformers' rule): the score filters run first
#: over the retrieved pool, and the window is counted over the candidates that survive them.
RANGE_RULES = ("ranks", "survivors")


@dataclass(frozen=True)
class CandidateFilters:
    """range_min / range_max: the rank window [range_min, range_max) counted over the corpus sorted by score with
    positives and excluded ids removed. max_score / min_score: drop candidates scoring above / below them.
    absolute_margin m: drop a candidate scoring above p - m, where p is the query's lowest positive score.
    relative_margin r: drop a candidate scoring above p - |p| * r (correct when p is negative).
    range_rule: where the window is counted, see RANGE_RULES."""

    range_min: int
    range_max: int
    max_score: float | None = None
    min_score: float | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    range_rule: str = "ranks"

    @property
    def active(self) -> tuple[str, ...]:
        """Names of the score filters that are set, in the order they are applied."""
        return tuple(name for name in FILTER_ORDER if getattr(self, name) is not None)

    @property
    def uses_positive(self) -> bool:
        return self.absolute_margin is not None or self.relative_margin is not None

    def apply(self, scores: np.ndarray, usable: np.ndarray,
              positive_min: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """scores float32 [B, K] sorted descending per row; usable bool [B, K] (a real candidate that is not a
        positive or excluded id); positive_min [B] (the lowest positive score per query).

        Returns kept bool [B, K], the candidates per query int64 [B] (the rank window under "ranks", the whole
        usable pool under "survivors") and per-filter drop counts int64 [B].
        """
        if self.range_rule == "ranks":
            rank = np.cumsum(usable, axis=1) - 1
            alive = usable & (rank >= self.range_min) & (rank < self.range_max)
        else:
            alive = usable.copy()
        window = alive.sum(axis=1).astype(np.int64)
        s = scores.astype(np.float64)
        p = np.asarray(positive_min, dtype=np.float64)[:, None]
        dropped: dict[str, np.ndarray] = {}
        for name in self.active:
            value = float(getattr(self, name))
            if name == "max_score":
                fail = s > value
            elif name == "min_score":
                fail = s < value
            elif name == "absolute_margin":
                fail = s > p - value
            else:
                fail = s > p - np.abs(p) * value
            fail &= alive
            dropped[name] = fail.sum(axis=1).astype(np.int64)
            alive &= ~fail
        if self.range_rule == "survivors":
            rank = np.cumsum(alive, axis=1) - 1
            alive &= (rank >= self.range_min) & (rank < self.range_max)
        return alive, window, dropped
