"""Class-balanced resampling: every class drawn equally often, whatever its size (no mining)."""

from __future__ import annotations

from typing import Any

import numpy as np

from hardmine._checks import check_number
from hardmine.sampling.guards.class_balance import class_shares, quota_positions
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.policies.base import SubsetPolicy


def _labels(memory: ScoreMemory) -> np.ndarray:
    if memory.labels is None:
        raise ValueError("the 'class_balanced' policy needs class labels: build ScoreMemory(num_samples, labels=...)")
    return memory.labels


class ClassBalancedPolicy(SubsetPolicy):
    """The practitioner's answer to a long tail: each epoch is N draws in which class c takes a share proportional
    to n_c^power (power 0: every class equally, i.e. each sample with probability ∝ 1/n_c of its class), in a
    shuffled pass. A class with more samples than its share contributes a random subset of them, a rarer one
    repeats each of its samples evenly (the fewest repeats; the rest drawn without replacement).

    The weights are 1: resampling is meant to change the training distribution, so it does not correct back to
    uniform (that would undo it, up to variance). The difficulty is not read; scores are still recorded.
    power: in [0, 1]; 0.5 is square-root sampling, 1 keeps each class's share of the data.
    Needs a ScoreMemory built with labels. An in-batch loss with `+class_balance` in compare draws its batches
    with this policy. Guards: coverage adds left-out samples, weight_cap caps, noise_guard leaves its suspects out
    of an in-batch loss's selection; a class_balance guard's quotas replace the policy's (same power: no change).
    """

    name = "class_balanced"
    calls = frozenset({"adjust_subset", "adjust_weights", "adjust_selection"})

    def __init__(self, power: float = 0.0, **base: Any) -> None:
        super().__init__(**base)
        self.power = check_number("power", power, 0.0, 1.0)

    def attach(self, memory: ScoreMemory) -> None:
        """Refuse a memory without labels when the sampler is built."""
        _labels(memory)
        super().attach(memory)

    def epoch_subset(self, memory: ScoreMemory,
                     rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
        """N sorted int64 indices (repeats where a class is short of its share), each with weight 1."""
        labels = _labels(memory)
        chosen = quota_positions(labels, labels.size, class_shares(np.bincount(labels), self.power), rng)
        return chosen, np.ones(chosen.size)
