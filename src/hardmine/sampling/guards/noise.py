"""NoiseGuard ("amplify label noise", "overfit to outliers"): samples that look mislabeled rather than hard."""

from __future__ import annotations

import math

import numpy as np

from hardmine._checks import check_choice, check_int, check_number
from hardmine.sampling.guards.base import Guard
from hardmine.sampling.memory import ScoreMemory
from hardmine.state import Array, Float

_NOISE_METHODS = ("loss", "aum", "cartography")


class NoiseGuard(Guard):
    """Finds samples that look mislabeled rather than hard, and gives them the median difficulty.

    method:
      "loss": a moving-average loss above `threshold` (default ln C: the model gives the label less
          probability than a uniform guess would) after at least `min_visits` visits;
      "aum": area under the margin below `threshold` (default 0: on average another class's logit beats the
          label's; Pleiss et al. 2020); needs `margin` statistics in `update`;
      "cartography": mean true-class probability below `threshold` (default 0.3) with variability below
          `max_variability` (Swayamdipta et al. 2020's hard-to-learn region); needs `true_prob` statistics.
    The suspects are decided at each epoch's start and listed by `suspects()`, never silently dropped from the
    sampling; an in-batch loss leaves them out through `adjust_selection` (`HardExampleSampler.selection`).
    """

    name = "noise_guard"
    state_fields = {"suspect": Array("bool", "N", empty_ok=True), "median": Float()}

    def __init__(self, method: str = "loss", threshold: float | None = None, min_visits: int = 3,
                 max_variability: float = 0.2) -> None:
        super().__init__()
        check_choice("method", method, _NOISE_METHODS)
        if threshold is not None:
            threshold = check_number("threshold", threshold)
        self.method, self.threshold = method, threshold
        self.min_visits = check_int("min_visits", min_visits)
        self.max_variability = check_number("max_variability", max_variability, 0.0, 1.0)
        self._state = {"suspect": np.zeros(0, dtype=bool), "median": 0.0}

    def sources(self) -> frozenset[str]:
        """"margin" for method="aum", "true_prob" for "cartography", nothing for "loss"."""
        return frozenset({"aum": ("margin",), "cartography": ("true_prob",)}.get(self.method, ()))

    def start_epoch(self, epoch: int, memory: ScoreMemory, difficulty: np.ndarray) -> None:
        """Decide the suspects from the memory's statistics, and the difficulty they are given."""
        visited = memory.get("seen") >= self.min_visits
        if self.method == "loss":
            classes = max(memory.num_classes, 2)
            threshold = math.log(classes) if self.threshold is None else self.threshold
            suspect = visited & (memory.get("ema") > threshold)
        elif memory.updates and not memory.tracks("aum" if self.method == "aum" else "confidence"):
            raise ValueError(f"noise_guard(method={self.method!r}) needs "
                             f"{'margins' if self.method == 'aum' else 'true-class probabilities'}: pass "
                             "**hardmine.scores.signals(logits, targets) to update()")
        elif self.method == "aum":
            threshold = 0.0 if self.threshold is None else self.threshold
            suspect = visited & (memory.get("aum") < threshold)
        else:
            threshold = 0.3 if self.threshold is None else self.threshold
            suspect = visited & (memory.get("confidence") < threshold) & \
                (memory.get("variability") < self.max_variability)
        clean = difficulty[~suspect]
        self._state = {"suspect": suspect, "median": float(np.median(clean)) if clean.size else 0.0}

    def adjust_difficulty(self, values: np.ndarray, indices: np.ndarray | None) -> np.ndarray:
        """Suspects get the median difficulty of the others: neither up- nor down-weighted."""
        suspect = self._state["suspect"]
        if suspect.size == 0:
            return values
        mask = suspect if indices is None else suspect[indices]
        return np.where(mask, self._state["median"], values)

    def adjust_selection(self, keep: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """An in-batch loss leaves the suspects out: OHEM would otherwise pick exactly them."""
        suspect = self._state["suspect"]
        return keep if suspect.size == 0 else keep & ~suspect[indices]

    def suspects(self) -> np.ndarray:
        """Indices (int64) of the samples suspected of carrying a wrong label: candidates for relabeling."""
        return np.flatnonzero(self._state["suspect"]).astype(np.int64)

    def stats(self) -> dict[str, float]:
        """noise_suspects: how many samples are suspected this epoch."""
        return {"noise_suspects": float(self._state["suspect"].sum())}
