"""ClassBalance ("ignoring class imbalance"): per-class quotas of the sampling mass."""

from __future__ import annotations

import numpy as np

from hardmine._checks import check_number
from hardmine.sampling.guards.base import Guard
from hardmine.sampling.memory import ScoreMemory
from hardmine.state import Array


def class_shares(counts: np.ndarray, power: float) -> np.ndarray:
    """Each class's share [C] (float64, sums to 1) of the draws: proportional to n_c^power over the classes with
    n_c > 0 (`counts` [C]), 0 for the others; power 0 gives every present class an equal share."""
    counts = np.asarray(counts, dtype=np.float64)
    quota = np.where(counts > 0, np.power(counts, power, where=counts > 0, out=np.zeros_like(counts)), 0.0)
    return quota / quota.sum()


def quota_positions(labels: np.ndarray, size: int, shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted int64 positions into `labels` [M] (a pool's class ids): `size` of them, class c taking about
    size * shares[c] (renormalised over the classes present in the pool; largest-remainder rounding). A class
    with more members than its slots gives a random subset of them, one with fewer repeats each member evenly
    (floor(slots / members) times) and draws the rest without replacement: class-balanced resampling with the
    fewest repeats."""
    present = np.bincount(labels, minlength=shares.size)
    if present.size != shares.size:
        raise ValueError(f"labels go up to {present.size - 1} but shares cover {shares.size} classes")
    weight = np.where(present > 0, shares, 0.0)
    exact = size * weight / weight.sum()
    slots = np.floor(exact).astype(np.int64)
    short = size - int(slots.sum())
    if short:
        slots[np.argsort(-(exact - slots), kind="stable")[:short]] += 1
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate([[0], np.cumsum(present)])
    chosen = []
    for c in np.flatnonzero(slots):
        members = order[starts[c]: starts[c + 1]]
        repeat, extra = divmod(int(slots[c]), members.size)
        chosen.append(np.repeat(members, repeat))
        chosen.append(rng.choice(members, extra, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


class ClassBalance(Guard):
    """Per-class quotas: class c receives a share of the sampling mass proportional to n_c^power.

    power: 0 gives every class an equal share (a rare class gets as many draws as a frequent one), 1 keeps each
    class's share of the data, so that a frequent class's hard samples cannot crowd out a rare class.
    Priority policies: each class's priorities are rescaled once an epoch so that its mass is its quota (hard
    samples stay favoured within their class), and the importance weights (beta > 0) correct toward the
    class-balanced distribution, not toward uniform: with beta = 1 the weighted loss estimates the mean over
    classes of each class's mean loss. A policy's uniform floor `mix` stays uniform over samples.
    Subset policies: a policy that takes a fraction of the data takes it within each class (`strata`), then the
    epoch's subset is resampled to the quotas at its own size (`adjust_subset`: a class short of its quota
    repeats its members evenly), each sample keeping its weight; a class the policy left out of the epoch gets no
    share (self-paced learning may admit no sample of a class that looks hard). Needs a ScoreMemory with labels.
    """

    name = "class_balance"
    state_version = 2
    state_fields = {"factor": Array("float64", low=0.0), "base": Array("float64", low=0.0)}

    def __init__(self, power: float = 0.0) -> None:
        super().__init__()
        self.power = check_number("power", power, 0.0, 1.0)
        """The exponent of the class quotas (0: equal shares)."""
        self._state = {"factor": np.zeros(0, dtype=np.float64), "base": np.zeros(0, dtype=np.float64)}
        self._labels: np.ndarray | None = None  # the memory's, set at each epoch's start (the memory saves them)

    def start_epoch(self, epoch: int, memory: ScoreMemory, difficulty: np.ndarray) -> None:
        """A clear error when the memory has no labels; else remember them for `adjust_subset`."""
        if memory.labels is None:
            raise ValueError("class_balance needs class labels: build ScoreMemory(num_samples, labels=...)")
        self._labels = memory.labels

    def start_priorities(self, priorities: np.ndarray, labels: np.ndarray | None) -> None:
        """Per-class factors that bring each class's priority mass [N] to its quota, and N x the class-balanced
        probability of one sample of each class (n_c^power / sum_k n_k^power / n_c, the base of the weights)."""
        classes = int(labels.max()) + 1
        counts = np.bincount(labels, minlength=classes).astype(np.float64)
        mass = np.bincount(labels, weights=priorities, minlength=classes)
        shares = class_shares(counts, self.power)
        quota = shares * mass.sum()
        base = np.divide(labels.size * shares, counts, out=np.zeros_like(shares), where=counts > 0)
        self._state = {"factor": np.divide(quota, mass, out=np.zeros_like(quota), where=mass > 0), "base": base}

    def adjust_priorities(self, priorities: np.ndarray, indices: np.ndarray | None,
                          labels: np.ndarray | None) -> np.ndarray:
        """Priorities times their class's factor."""
        factor = self._state["factor"]
        if factor.size == 0:
            return priorities
        return priorities * factor[labels]

    def adjust_probabilities(self, probabilities: np.ndarray, indices: np.ndarray,
                             labels: np.ndarray | None) -> np.ndarray:
        """P / (N x P_balanced) [B]: importance weights (N P')^-beta become (P / P_balanced)^-beta."""
        base = self._state["base"]
        if base.size == 0:
            return probabilities
        return probabilities / base[labels]

    def strata(self, labels: np.ndarray | None) -> np.ndarray | None:
        """The class labels: a subset policy takes its fraction within each class."""
        return labels

    def adjust_subset(self, subset: np.ndarray, weights: np.ndarray, num_samples: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The subset [M] resampled to the class quotas (sorted, M entries, repeats where a class is short), each
        entry with its sample's weight."""
        if self._labels is None:
            raise ValueError("class_balance needs class labels: build ScoreMemory(num_samples, labels=...)")
        shares = class_shares(np.bincount(self._labels), self.power)
        positions = quota_positions(self._labels[subset], subset.size, shares, rng)
        return subset[positions], weights[positions]
