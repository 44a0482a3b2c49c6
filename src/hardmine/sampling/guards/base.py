"""The guard interface: hooks that receive arrays, never a policy.

A guard implements any of the hooks below; each policy kind declares in `calls` which of them it calls (and calls
no other), and a guard that implements none of those is refused when the policy is built (with the lists of both);
`hardmine.testing.check_guard` proves that every accepted guard takes effect. A guard
derives what it needs from the memory once an epoch (`start_epoch`, O(N)); per step it only looks things up.

Effect hooks (HOOKS):
- adjust_difficulty(values, indices): difficulty [B] or [N] as the policy should see it;
- start_priorities(priorities, labels): the policy's own priorities [N] at the epoch's start;
- adjust_priorities(priorities, indices, labels): priorities [B] or [N] as the sampler should use them;
- adjust_mix(mix): the uniform fraction of each batch of a priority policy;
- forced(): indices [M] a priority policy must draw this epoch;
- strata(labels): group ids [N] within which a subset policy takes its fraction;
- adjust_subset(subset, weights, num_samples, rng): an epoch's subset [M] and weights [M];
- adjust_probabilities(probabilities, indices, labels): a priority policy's draw probabilities [B] as its
  importance correction should see them: divided by N x the probability under the distribution the guard makes
  the target, so that the weights correct toward that distribution instead of toward uniform;
- adjust_weights(weights): importance weights [B] as the loss should use them;
- adjust_selection(keep, indices): which samples [B] of a batch an in-batch loss may use (every policy calls it,
  through `HardExampleSampler.selection`).
Report hooks: stats() for logging, suspects() for samples that look mislabeled (None: not looked for).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from hardmine.registry import Registered, Registry
from hardmine.sampling.memory import Column, ScoreMemory
from hardmine.state import Field, Stateful, from_saved

HOOKS = ("adjust_difficulty", "start_priorities", "adjust_priorities", "adjust_mix", "forced", "strata",
         "adjust_subset", "adjust_probabilities", "adjust_weights", "adjust_selection")

GUARDS = Registry("guard")
"""Every guard class with a `name`, registered by subclassing: `GUARDS["noise_guard"]`."""


class Guard(Registered, Stateful):
    """Base of every guard: hooks that change nothing, and state that round-trips.

    Subclasses set `name` to register, store each constructor argument as the attribute of its name (the saved
    configuration is derived from the signature, see hardmine.state.Stateful) and epoch-derived values in
    `self._state` (numpy arrays and plain values, declared in `state_fields`), and override the hooks they need.
    """

    registry: ClassVar[Registry] = GUARDS
    columns: ClassVar[tuple[Column, ...]] = ()
    """Memory columns this guard reads beyond the built-in ones; the sampler declares them on its memory."""
    state_version: ClassVar[int] = 1
    state_fields: ClassVar[dict[str, Field]] = {}
    """The schema of `self._state` ("N" is the data set's size), checked by `load_state_dict` before assigning."""
    state_name_key = "name"
    state_in = "_state"
    state_key = "state"

    def __init__(self) -> None:
        self._state: dict[str, Any] = {}

    @classmethod
    def hooks(cls) -> frozenset[str]:
        """The effect hooks this guard implements (overrides of Guard's)."""
        return frozenset(h for h in HOOKS if getattr(cls, h) is not getattr(Guard, h))

    def sources(self) -> frozenset[str]:
        """The `update()` statistics this guard reads through the memory (e.g. "margin" for AUM), beyond the
        score: `hardmine.scores.statistics` computes only those some policy or guard reads."""
        return frozenset(c.source for c in self.columns if c.source not in ("scores", None))

    def start_epoch(self, epoch: int, memory: ScoreMemory, difficulty: np.ndarray) -> None:
        """At the epoch's start, before the policy's own: derive what the hooks need from the memory and the
        policy's difficulty [N] before any guard's adjustment."""

    def adjust_difficulty(self, values: np.ndarray, indices: np.ndarray | None) -> np.ndarray:
        """Difficulty [B] or [N] of samples `indices` (None: all) as the policy should see it."""
        return values

    def start_priorities(self, priorities: np.ndarray, labels: np.ndarray | None) -> None:
        """After the policy's epoch start: its own priorities [N] and the labels [N] (None without labels)."""

    def adjust_priorities(self, priorities: np.ndarray, indices: np.ndarray | None,
                          labels: np.ndarray | None) -> np.ndarray:
        """Priorities [B] or [N] of samples `indices` with their labels (None without) as the sampler uses them."""
        return priorities

    def adjust_mix(self, mix: float) -> float:
        """The uniform fraction of each batch of a priority policy."""
        return mix

    def forced(self) -> np.ndarray:
        """Indices (int64) a priority policy must draw this epoch."""
        return np.zeros(0, dtype=np.int64)

    def strata(self, labels: np.ndarray | None) -> np.ndarray | None:
        """Group ids [N] within which a subset policy takes its fraction, or None."""
        return None

    def adjust_subset(self, subset: np.ndarray, weights: np.ndarray, num_samples: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """An epoch's subset [M] (sorted int64) and weights [M]; `rng` is the epoch's seeded generator."""
        return subset, weights

    def adjust_probabilities(self, probabilities: np.ndarray, indices: np.ndarray,
                             labels: np.ndarray | None) -> np.ndarray:
        """Draw probabilities [B] of samples `indices` [B] (labels [B], None without) as a priority policy's importance
        correction should see them; uniform (1/N) is the target distribution unless a guard changes it."""
        return probabilities

    def adjust_weights(self, weights: np.ndarray) -> np.ndarray:
        """Importance weights [B] as the loss should use them."""
        return weights

    def adjust_selection(self, keep: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Boolean [B]: which samples `indices` of a batch an in-batch loss may use."""
        return keep

    def stats(self) -> dict[str, float]:
        """Numbers for logging."""
        return {}

    def suspects(self) -> np.ndarray | None:
        """Indices (int64) of samples that look mislabeled, or None when this guard does not look for them."""
        return None

    def _state_owner(self) -> str:
        return f"guard {self.name!r}"

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Guard:
        """A guard rebuilt from `state_dict()`, checked before it is returned."""
        if not isinstance(state, dict) or state.get("name") != cls.name or not isinstance(state.get("config"), dict):
            found = f"a dict named {state.get('name')!r}" if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"state is not a {cls.name!r} guard's state: got {found}")
        guard = cls(**from_saved(state["config"]))
        guard.load_state_dict(state, use_saved_config=True)
        return guard

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"
