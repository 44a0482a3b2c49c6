"""Guards against the risks of hard example mining, each turned on by passing it to a policy's `guards=`.

- NoiseGuard ("amplify label noise", "overfit to outliers"): samples that look mislabeled rather than hard are
  not up-weighted; they are listed by `suspects()` for relabeling, never silently dropped.
- ClassBalance ("ignoring class imbalance"): per-class quotas of the sampling mass.
- CoverageGuard ("reduce coverage of easy but important cases"): a uniform floor, and every sample drawn at
  least once every K epochs.
- WeightCap ("destabilize optimization"): importance weights clipped at a maximum.

A guard derives what it needs from the memory once an epoch (O(N)); per step it only looks things up.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from hardmine._checks import check_fraction, check_positive_int
from hardmine.memory import ScoreMemory

if TYPE_CHECKING:
    from hardmine.sampling.policies.base import Policy


class Guard:
    """Base of every guard: hooks that do nothing, and state that round-trips."""

    name: ClassVar[str] = ""
    no_effect_on: ClassVar[dict[str, str]] = {}  # policy name -> what to use instead; such pairs are refused

    def __init__(self) -> None:
        self._config: dict[str, Any] = {}
        self._state: dict[str, Any] = {}

    def start_epoch(self, epoch: int, memory: ScoreMemory, policy: Policy) -> None:
        """Before the policy's own epoch start: derive what adjust_difficulty needs."""

    def after_policy_start(self, epoch: int, memory: ScoreMemory, policy: Policy) -> None:
        """After the policy's own epoch start: derive what adjust_priorities and the subset hooks need."""

    def adjust_difficulty(self, values: np.ndarray, indices: np.ndarray | None) -> np.ndarray:
        """Difficulty [B] or [N] as the policy should see it."""
        return values

    def adjust_priorities(self, priorities: np.ndarray, memory: ScoreMemory, indices: np.ndarray | None) -> np.ndarray:
        """Priorities [B] or [N] as the sampler should use them."""
        return priorities

    def adjust_weights(self, weights: np.ndarray) -> np.ndarray:
        """Importance weights [B] as the loss should use them."""
        return weights

    def state_dict(self) -> dict[str, Any]:
        """Name, constructor arguments and derived state (tensors and plain values)."""
        state = {k: torch.from_numpy(v.copy()) if isinstance(v, np.ndarray) else v for k, v in self._state.items()}
        return {"name": self.name, "config": dict(self._config), "state": state}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Guard:
        """A guard rebuilt from `state_dict()`, checked before it is returned."""
        if not isinstance(state, dict) or state.get("name") != cls.name:
            raise ValueError(f"state is not a {cls.name!r} guard's state")
        guard = cls(**state["config"])
        loaded = {k: v.numpy().copy() if isinstance(v, torch.Tensor) else v for k, v in state["state"].items()}
        if set(loaded) != set(guard._state):
            raise ValueError(f"{cls.name} state has keys {sorted(loaded)}, expected {sorted(guard._state)}")
        guard._state = loaded
        return guard

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._config.items())})"


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
    The suspects are decided at each epoch's start and listed by `suspects()`.
    """

    name = "noise_guard"

    def __init__(self, method: str = "loss", threshold: float | None = None, min_visits: int = 3,
                 max_variability: float = 0.2) -> None:
        super().__init__()
        if method not in _NOISE_METHODS:
            raise ValueError(f"method must be one of {_NOISE_METHODS}, got {method!r}")
        if threshold is not None:
            threshold = check_fraction("threshold", threshold, -math.inf, math.inf, low_inclusive=False,
                                       high_inclusive=False)
        self._config = {"method": method, "threshold": threshold,
                        "min_visits": check_positive_int("min_visits", min_visits),
                        "max_variability": check_fraction("max_variability", max_variability, 0.0, 1.0)}
        self._state = {"suspect": np.zeros(0, dtype=bool), "median": 0.0}

    def start_epoch(self, epoch: int, memory: ScoreMemory, policy: Policy) -> None:
        """Decide the suspects from the memory's statistics, and the difficulty they are given."""
        cfg = self._config
        visited = memory.get("seen") >= cfg["min_visits"]
        if cfg["method"] == "loss":
            classes = max(memory.num_classes, 2)
            threshold = math.log(classes) if cfg["threshold"] is None else cfg["threshold"]
            suspect = visited & (memory.get("ema") > threshold)
        elif memory.updates and not memory.tracks("aum" if cfg["method"] == "aum" else "confidence"):
            raise ValueError(f"noise_guard(method={cfg['method']!r}) needs "
                             f"{'margins' if cfg['method'] == 'aum' else 'true-class probabilities'}: pass "
                             "**hardmine.scores.statistics(logits, targets) to update()")
        elif cfg["method"] == "aum":
            threshold = 0.0 if cfg["threshold"] is None else cfg["threshold"]
            suspect = visited & (memory.get("aum") < threshold)
        else:
            threshold = 0.3 if cfg["threshold"] is None else cfg["threshold"]
            suspect = visited & (memory.get("confidence") < threshold) & \
                (memory.get("variability") < cfg["max_variability"])
        difficulty = policy.difficulty(memory, guarded=False)
        clean = difficulty[~suspect]
        self._state = {"suspect": suspect, "median": float(np.median(clean)) if clean.size else 0.0}

    def adjust_difficulty(self, values: np.ndarray, indices: np.ndarray | None) -> np.ndarray:
        """Suspects get the median difficulty of the others: neither up- nor down-weighted."""
        suspect = self._state["suspect"]
        if suspect.size == 0:
            return values
        mask = suspect if indices is None else suspect[indices]
        return np.where(mask, self._state["median"], values)

    def suspects(self) -> np.ndarray:
        """Indices (int64) of the samples suspected of carrying a wrong label: candidates for relabeling."""
        return np.flatnonzero(self._state["suspect"]).astype(np.int64)


class ClassBalance(Guard):
    """Per-class quotas: class c receives a share of the sampling mass proportional to n_c^power.

    power: 0 gives every class an equal share (a rare class gets as many draws as a frequent one), 1 keeps each
    class's share of the data, so that a frequent class's hard samples cannot crowd out a rare class.
    Priority policies rescale each class's priorities once an epoch; subset policies select within each class.
    Needs a ScoreMemory built with labels.
    """

    name = "class_balance"
    no_effect_on: ClassVar[dict[str, str]] = {
        "uniform": "for class-balanced sampling use importance:alpha=0,beta=0 with class_balance",
        "self_paced": "it admits samples by a loss threshold, not by a share of the data",
        "selective_backprop": "it passes over every sample; use importance with class_balance",
    }

    def __init__(self, power: float = 0.0) -> None:
        super().__init__()
        self._config = {"power": check_fraction("power", power, 0.0, 1.0)}
        self._state = {"factor": np.zeros(0, dtype=np.float64)}

    @staticmethod
    def labels(memory: ScoreMemory) -> np.ndarray:
        """The memory's labels, or a clear error when it has none."""
        if memory.labels is None:
            raise ValueError("class_balance needs class labels: build ScoreMemory(num_samples, labels=...)")
        return memory.labels

    def after_policy_start(self, epoch: int, memory: ScoreMemory, policy: Policy) -> None:
        """Per-class factors that bring each class's priority mass to its quota."""
        if policy.kind != "priority":
            return
        labels = self.labels(memory)
        counts = np.bincount(labels, minlength=memory.num_classes).astype(np.float64)
        mass = np.bincount(labels, weights=policy._priorities(memory, None), minlength=memory.num_classes)
        quota = np.where(counts > 0, counts ** self._config["power"], 0.0)
        quota = quota / quota.sum() * mass.sum()
        self._state = {"factor": np.divide(quota, mass, out=np.zeros_like(quota), where=mass > 0)}

    def adjust_priorities(self, priorities: np.ndarray, memory: ScoreMemory, indices: np.ndarray | None) -> np.ndarray:
        """Priorities times their class's factor."""
        factor = self._state["factor"]
        if factor.size == 0:
            return priorities
        labels = memory.labels if indices is None else memory.labels[indices]
        return priorities * factor[labels]


class CoverageGuard(Guard):
    """Keeps easy samples in play: a uniform floor `mix`, and (with `every`) each sample drawn once every K epochs.

    mix: in [0, 1]; priority policies draw at least this fraction of each batch uniformly, subset policies add
        this fraction of the samples they left out.
    every: K epochs; at each epoch's start, the samples not scored in the last K epochs are put first.
    """

    name = "coverage"

    def __init__(self, mix: float = 0.1, every: int | None = None) -> None:
        super().__init__()
        self._config = {"mix": check_fraction("mix", mix, 0.0, 1.0),
                        "every": None if every is None else check_positive_int("every", every)}
        self._state = {"starts": [], "overdue": np.zeros(0, dtype=np.int64)}

    @property
    def mix(self) -> float:
        """The uniform floor."""
        return self._config["mix"]

    def start_epoch(self, epoch: int, memory: ScoreMemory, policy: Policy) -> None:
        """Remember the step at which this epoch starts; list the samples not scored since epoch e - K + 1."""
        starts = {int(e): int(s) for e, s in self._state["starts"]}
        starts[epoch] = memory.updates
        every = self._config["every"]
        overdue = np.zeros(0, dtype=np.int64)
        if every is not None and epoch - every + 1 in starts:
            overdue = np.flatnonzero(memory.get("last_step") < starts[epoch - every + 1]).astype(np.int64)
        kept = sorted(starts.items())[-(every or 1):]
        self._state = {"starts": [list(pair) for pair in kept], "overdue": overdue}

    def overdue(self) -> np.ndarray:
        """Indices (int64) that must be drawn this epoch."""
        return self._state["overdue"]


class WeightCap(Guard):
    """Clips importance weights at `max_weight`: a rare sample drawn once cannot dominate an update."""

    name = "weight_cap"

    def __init__(self, max_weight: float = 10.0) -> None:
        super().__init__()
        self._config = {"max_weight": check_fraction("max_weight", max_weight, 0.0, math.inf,
                                                     low_inclusive=False, high_inclusive=False)}

    def adjust_weights(self, weights: np.ndarray) -> np.ndarray:
        """min(w, max_weight) [B]."""
        return np.minimum(weights, self._config["max_weight"])


GUARDS: dict[str, type[Guard]] = {cls.name: cls for cls in (NoiseGuard, ClassBalance, CoverageGuard, WeightCap)}
