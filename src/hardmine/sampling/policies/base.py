"""The policy interface: how the score memory becomes the next batches, and their importance weights.

Three kinds, told apart by `kind`:
- "priority": batches are drawn with replacement from a sum tree of per-sample priorities (`priorities`), with
  a uniform fraction `mix`, and importance weights from the draw probabilities (`weights`);
- "subset": each epoch is a shuffled pass over a subset of the data chosen at the epoch's start, each sample
  with a weight (`epoch_subset`): shuffling, pruning, curricula, self-paced learning;
- "batch": shuffled passes over all the data; the loop's losses decide which samples of each batch are
  back-propagated (`select`): selective backprop.

Contract, relied on by HardExampleSampler for exact resumption: everything a policy derives from the whole
memory is computed in `start_epoch` (O(N), once an epoch) and held in `state_dict()`; per step, a priority
policy re-prioritises only the B samples just scored, with `priorities(memory, indices)`, a pure function of the
memory and that state.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import numpy as np
import torch

from hardmine._checks import check_positive_int
from hardmine.sampling.guards import Guard
from hardmine.memory import ScoreMemory
from hardmine.sampling.schedules import Schedule, ScheduleLike, as_schedule

_STATISTICS = ("score", "ema")


def _to_plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, Schedule):
        return value.state_dict()
    return value


def _from_plain(value: Any) -> Any:
    return value.numpy().copy() if isinstance(value, torch.Tensor) else value


class Policy:
    """Base of every policy: the difficulty it reads, warm-up, guards, schedules and state.

    warmup: epochs of plain shuffling before the policy starts ("applying hard mining too early" is a pitfall);
        scores are still recorded during them.
    guards: Guard objects (hardmine.sampling.guards) that protect against label noise, class imbalance, lost coverage
        and unstable weights.
    statistic: the memory statistic read as difficulty: "score" (the latest) or "ema".
    stale_after: steps; a sample not scored for longer counts as never seen (it gets the largest difficulty, so
        it is drawn and re-scored soon): "failing to refresh mined samples" is a pitfall. Judged at epoch starts.
    Scheduled parameters (a number or a hardmine.sampling.schedules.Schedule) are evaluated at each epoch's start.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "priority"
    mix: float = 0.0

    def __init__(self, *, warmup: int = 0, guards: Sequence[Any] = (), statistic: str = "score",
                 stale_after: int | None = None) -> None:
        self.warmup = check_positive_int("warmup", warmup, minimum=0)
        guards = tuple(guards)
        for guard in guards:
            if not isinstance(guard, Guard):
                raise TypeError(f"guards must hold Guard objects, got {type(guard).__name__}")
            if self.name in guard.no_effect_on:
                raise ValueError(f"{guard.name} has no effect on the {self.name!r} policy: {guard.no_effect_on[self.name]}")
        self.guards = guards
        if statistic not in _STATISTICS:
            raise ValueError(f"statistic must be one of {_STATISTICS}, got {statistic!r}")
        self.statistic = statistic
        self.stale_after = None if stale_after is None else check_positive_int("stale_after", stale_after)
        self._config: dict[str, Any] = {"warmup": self.warmup, "statistic": statistic,
                                        "stale_after": self.stale_after}
        self._state: dict[str, Any] = {"unseen_score": 1.0, "epoch": -1, "fresh_since": -1}

    def _schedule(self, name: str, value: ScheduleLike) -> Schedule:
        """Store a scheduled constructor argument; its value at the current epoch is `self.value(name)`."""
        schedule = as_schedule(name, value)
        self._config[name] = schedule
        return schedule

    def value(self, name: str) -> float:
        """The value of scheduled parameter `name` at the epoch last started (epoch 0 before any)."""
        return self._config[name](max(self._state["epoch"], 0))

    def in_warmup(self, epoch: int) -> bool:
        """True while `epoch` is one of the warm-up epochs, drawn by plain shuffling."""
        return epoch < self.warmup

    def start_epoch(self, epoch: int, memory: ScoreMemory) -> None:
        """Recompute what the policy and its guards derive from the whole memory (O(N), once an epoch)."""
        self._state["epoch"] = epoch
        if self.stale_after is not None:
            self._state["fresh_since"] = memory.updates - self.stale_after
        raw = memory.get(self.statistic).astype(np.float64)
        seen = self._fresh(memory, None)
        self._state["unseen_score"] = float(raw[seen].max()) if seen.any() else 1.0
        for guard in self.guards:
            guard.start_epoch(epoch, memory, self)
        self._start(epoch, memory)
        for guard in self.guards:
            guard.after_policy_start(epoch, memory, self)

    def _fresh(self, memory: ScoreMemory, indices: np.ndarray | None) -> np.ndarray:
        """True [B] or [N] where a sample has a score that is not stale."""
        return (memory.get("seen", indices) > 0) & (memory.get("last_step", indices) >= self._state["fresh_since"])

    def _start(self, epoch: int, memory: ScoreMemory) -> None:
        """The policy's own epoch-start work; `difficulty` is final (guards applied) when it runs."""

    def difficulty(self, memory: ScoreMemory, indices: np.ndarray | None = None, guarded: bool = True) -> np.ndarray:
        """Difficulty [B] or [N] (float64, higher = harder): the memory's statistic, never-seen samples at the
        largest value seen when the epoch started, then each guard's adjustment (e.g. noise suspects)."""
        values = memory.get(self.statistic, indices).astype(np.float64)
        values = np.where(self._fresh(memory, indices), values, self._state["unseen_score"])
        if guarded:
            for guard in self.guards:
                values = guard.adjust_difficulty(values, indices)
        return values

    # priority policies
    def priorities(self, memory: ScoreMemory, indices: np.ndarray | None = None) -> np.ndarray:
        """Non-negative sampling priorities [B] or [N] (float64), after the guards' adjustments."""
        p = self._priorities(memory, indices)
        for guard in self.guards:
            p = guard.adjust_priorities(p, memory, indices)
        return p

    def _priorities(self, memory: ScoreMemory, indices: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} is a {self.kind} policy and has no priorities")

    def weights(self, probabilities: np.ndarray, num_samples: int) -> np.ndarray:
        """Importance weights [B] of samples drawn with `probabilities` [B]; ones unless a policy corrects."""
        return self.cap(np.ones_like(probabilities, dtype=np.float64))

    def cap(self, weights: np.ndarray) -> np.ndarray:
        """Apply the guards' weight adjustments (e.g. a cap) to weights [B]."""
        for guard in self.guards:
            weights = guard.adjust_weights(weights)
        return weights

    def guard(self, name: str) -> Any:
        """The guard registered as `name` among this policy's guards, or None."""
        return next((g for g in self.guards if g.name == name), None)

    @property
    def floor(self) -> float:
        """The uniform fraction of each batch: the larger of the policy's `mix` and a coverage guard's."""
        coverage = self.guard("coverage")
        return max(self.mix, coverage.mix if coverage is not None else 0.0)

    def stats(self) -> dict[str, float]:
        """Numbers about the current epoch for logging (e.g. a realised keep ratio)."""
        return {}

    # subset policies
    def epoch_subset(self, memory: ScoreMemory, rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(indices [M] int64, weights [M] float64) of this epoch's samples, or (None, None) for all, weight 1.

        Called once at the epoch's start, after `start_epoch`.
        """
        return None, None

    # batch policies
    def select(self, losses: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Weights [B] of a scored batch of samples `indices` [B]: 0 for the samples not to back-propagate."""
        return np.ones_like(losses, dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        """Name, constructor arguments, derived state and the guards' states; tensors and plain values only."""
        return {
            "name": self.name,
            "config": {k: _to_plain(v) for k, v in self._config.items()},
            "state": {k: _to_plain(v) for k, v in self._state.items()},
            "guards": [guard.state_dict() for guard in self.guards],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` into a policy of the same class; everything is checked before anything changes."""
        if not isinstance(state, dict) or state.get("name") != self.name:
            raise ValueError(f"state is not a {self.name!r} policy's state")
        if len(state["guards"]) != len(self.guards):
            raise ValueError(f"state holds {len(state['guards'])} guards, this policy has {len(self.guards)}")
        guards = []
        for guard, guard_state in zip(self.guards, state["guards"]):
            fresh_guard = type(guard).from_state(guard_state)
            guards.append(fresh_guard)
        fresh = type(self)(**state["config"], guards=guards)
        loaded = {k: _from_plain(v) for k, v in state["state"].items()}
        if set(loaded) != set(fresh._state):
            raise ValueError(f"state['state'] has keys {sorted(loaded)}, expected {sorted(fresh._state)}")
        fresh._state = loaded
        self.__dict__.update(fresh.__dict__)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        guards = f", guards={list(self.guards)!r}" if self.guards else ""
        return f"{type(self).__name__}({params}{guards})"


NORMALIZE = ("max", "none")


def check_normalize(normalize: str) -> str:
    """The `normalize` argument of importance weights, checked."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    return normalize


def importance_weights(probabilities: np.ndarray, num_samples: int, beta: float, normalize: str) -> np.ndarray:
    """(N * P)^-beta [B]; divided by the batch's largest when normalize is "max" (it only scales updates down).

    With beta = 1 and no normalisation the weighted mean loss is an unbiased estimate of the uniform mean.
    """
    w = (num_samples * probabilities) ** (-beta)
    return w / w.max() if normalize == "max" else w


def top_samples(key: np.ndarray, fraction: float, labels: np.ndarray | None = None) -> np.ndarray:
    """Sorted int64 indices of the ceil(fraction * n) samples with the largest `key` [N] (at least one).

    With `labels` [N], the fraction is taken within each class, so every class keeps its share.
    """
    if labels is None:
        count = max(1, math.ceil(fraction * key.size - 1e-9))  # 0.3 * 100 is 30.000000000000004
        return np.sort(np.argpartition(-key, count - 1)[:count]).astype(np.int64)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        chosen.append(members[top_samples(key[members], fraction)])
    return np.sort(np.concatenate(chosen)).astype(np.int64)
