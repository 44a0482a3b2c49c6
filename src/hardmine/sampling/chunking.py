"""Amortised mining: several batches drawn in one vectorised call (a chunk), and updates buffered until it ends.

Per-call Python and numpy dispatch, not arithmetic, is what a mining step costs, so the sampler draws `chunk`
batches at once and writes the updates of `chunk` batches to the memory and the sum tree at once. Priorities are
then at most a chunk stale, as they already are under DataLoader prefetching. With chunk = 1 the draws are, call
for call, those of one batch at a time.

`draw_by_priority` and `draw_from_subset` return a `Chunk` of global batches (every rank draws the same and takes
its slice); `UpdateBuffer` holds the validated updates of the batches consumed since the last write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hardmine.sampling.host_copy import HostValues
from hardmine.sampling.policies import Policy, PriorityPolicy
from hardmine.sampling.sumtree import SumTree


@dataclass
class Chunk:
    """Global batches first, first + 1, ... of an epoch: int64 indices [S_b] and float64 weights [S_b] each."""

    first: int
    indices: list[np.ndarray]
    weights: list[np.ndarray]
    batches: list[np.ndarray] = field(default_factory=list)
    """This rank's share of each batch (int64 [B]), set by the sampler."""
    local_weights: list[torch.Tensor] = field(default_factory=list)
    """Its weights (float32 [B]) on the device of the latest losses."""
    counts: np.ndarray | None = None
    """Samples of each class [C, K] in this rank's share of each batch (None without labels)."""

    @property
    def end(self) -> int:
        """One past the last batch number of the chunk."""
        return self.first + len(self.indices)

    def state(self) -> dict[str, Any]:
        """The chunk as plain arrays: first, sizes [C], indices [M], weights [M]."""
        return {"first": self.first, "sizes": np.array([b.size for b in self.indices], dtype=np.int64),
                "indices": np.concatenate(self.indices), "weights": np.concatenate(self.weights)}

    @classmethod
    def from_state(cls, state: dict[str, Any], num_samples: int) -> Chunk:
        """A chunk from `state()`'s arrays, checked (dtypes, lengths, index range, finite non-negative weights)."""
        first, sizes, indices, weights = (state.get(k) for k in ("first", "sizes", "indices", "weights"))
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ValueError(f"state['chunk']['first'] must be an int >= 0, got {first!r}")
        for name, arr, kind in (("sizes", sizes, "i"), ("indices", indices, "i"), ("weights", weights, "f")):
            if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind != kind:
                raise ValueError(f"state['chunk'][{name!r}] must be a 1-D {'integer' if kind == 'i' else 'float'} "
                                 f"array, got {getattr(arr, 'dtype', type(arr).__name__)}")
        if sizes.size == 0 or sizes.min() < 1 or int(sizes.sum()) != indices.size or indices.size != weights.size:
            raise ValueError("state['chunk'] sizes, indices and weights do not match")
        if indices.min() < 0 or indices.max() >= num_samples:
            raise ValueError(f"state['chunk']['indices'] out of range [0, {num_samples})")
        if not (np.isfinite(weights).all() and weights.min() >= 0):
            raise ValueError("state['chunk']['weights'] must be finite and non-negative")
        cuts = np.cumsum(sizes)[:-1]
        return cls(first, np.split(indices.astype(np.int64), cuts), np.split(weights.astype(np.float64), cuts))


def _philox(seed: int, epoch: int, k: int) -> np.random.Generator:
    """The random stream of the chunk that starts at batch k of `epoch` (a batch's own with chunk = 1)."""
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, 0, k, epoch]))


def draw_by_priority(tree: SumTree, policy: PriorityPolicy, num_samples: int, seed: int, epoch: int, first: int,
                     sizes: list[int], stride: int, forced: np.ndarray) -> Chunk:
    """Batches first .. first + len(sizes) - 1 drawn with replacement: a `policy.floor` fraction uniformly, the
    rest from `tree`, after the guards' `forced` samples due in each (batch k's start at k * stride of them).

    All draws come from one stream and one tree descent; with several batches they are shuffled across batches
    (the tree returns them nearly sorted). Importance weights are computed per batch (a batch's maximum may
    normalise them), from the mixture probability of each draw.
    """
    n = num_samples
    taken = [forced[(first + b) * stride: (first + b) * stride + size] for b, size in enumerate(sizes)]
    free = [size - t.size for size, t in zip(sizes, taken)]
    total_free = sum(free)
    rng = _philox(seed, epoch, first)
    mix = policy.floor
    from_uniform = rng.random(total_free) < mix
    drawn = np.empty(total_free, dtype=np.int64)
    drawn[from_uniform] = rng.integers(0, n, int(from_uniform.sum()))
    probabilities = np.full(drawn.size, mix / n)
    if not from_uniform.all():
        drawn[~from_uniform] = tree.sample(int((~from_uniform).sum()), rng)
        probabilities += (1.0 - mix) * tree.get(drawn) / tree.total()
    if len(sizes) > 1:
        order = rng.permutation(total_free)
        drawn, probabilities = drawn[order], probabilities[order]
    indices, weights, at = [], [], 0
    for t, count in zip(taken, free):
        own, p = drawn[at: at + count], probabilities[at: at + count]
        at += count
        if t.size:
            own = np.concatenate([t, own])
            p = np.concatenate([np.full(t.size, 1.0 / n), p])  # forced: as if uniform
        indices.append(own)
        weights.append(policy.weights(p, n))
    return Chunk(first, indices, weights)


def draw_from_subset(permutation: np.ndarray, subset: np.ndarray | None, subset_weights: np.ndarray | None,
                     policy: Policy, first: int, sizes: list[int], stride: int) -> Chunk:
    """Batches first .. of a shuffled pass: batch k holds the permutation's positions k * stride onwards (of the
    subset when a policy chose one), weighted by the subset's weights (ones for all the data), guards' caps."""
    samples = permutation.size
    start = first * stride
    positions = permutation[(start + np.arange((len(sizes) - 1) * stride + sizes[-1])) % samples]
    indices, weights = [], []
    for b, size in enumerate(sizes):
        own = positions[b * stride: b * stride + size]
        if subset is None:
            indices.append(own)
            weights.append(policy.cap(np.ones(size)))
        else:
            indices.append(subset[own])
            weights.append(policy.cap(subset_weights[own]))
    return Chunk(first, indices, weights)


@dataclass
class Pending:
    """One consumed batch's update: indices [B] (validated int64) and its values by source name."""

    indices: np.ndarray
    values: dict[str, HostValues]

    @property
    def ready(self) -> bool:
        return all(v.ready for v in self.values.values())


class UpdateBuffer:
    """The updates of the batches consumed since the last write, in order.

    The common case (one process, host values, no statistics) is copied into two growing arrays (indices and
    float64 scores, `append`); anything else is kept as `Pending` entries. The sampler keeps one kind at a time.
    """

    def __init__(self) -> None:
        self.entries: list[Pending] = []
        self.indices = np.empty(0, dtype=np.int64)
        self.scores = np.empty(0, dtype=np.float64)
        self.size = 0
        self.sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.sizes) + len(self.entries)

    def append(self, indices: np.ndarray, scores: np.ndarray) -> bool:
        """Copy a batch's validated indices [B] and real-valued scores [B] in; False, adding nothing, when the
        scores' sum is not finite (a NaN or inf, or an overflow: the caller finds out which)."""
        at = self.size
        end = at + indices.size
        if end > self.indices.size:
            grown = max(end, 2 * self.indices.size)
            self.indices = np.concatenate([self.indices[:at], np.empty(grown - at, dtype=np.int64)])
            self.scores = np.concatenate([self.scores[:at], np.empty(grown - at, dtype=np.float64)])
        view = self.scores[at:end]
        view[...] = scores
        with np.errstate(over="ignore", invalid="ignore"):
            total = np.add.reduce(view)
        if not math.isfinite(total):
            return False
        self.indices[at:end] = indices
        self.size = end
        self.sizes.append(indices.size)
        return True

    def take(self, wait: bool) -> list[Pending]:
        """Remove and return the entries to write now: all of them with `wait`, else those whose values have
        arrived on the host, up to the first that has not (the order of updates is kept)."""
        if wait:
            count = len(self.entries)
        else:
            count = 0
            while count < len(self.entries) and self.entries[count].ready:
                count += 1
        taken, self.entries = self.entries[:count], self.entries[count:]
        return taken

    def take_arrays(self) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, int]:
        """(indices [M], {"scores": [M]}, batch number [M], batches) of the appended batches, and empty them.
        The arrays are views, valid until the next `append`."""
        sizes, size = self.sizes, self.size
        self.sizes, self.size = [], 0
        batch = np.repeat(np.arange(len(sizes)), sizes) if len(sizes) > 1 else None
        return self.indices[:size], {"scores": self.scores[:size]}, batch, len(sizes)

    def clear(self) -> None:
        self.entries, self.sizes, self.size = [], [], 0


def concatenate(entries: list[Pending]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """(indices [M], values by source [M] float64, batch number [M]) of the entries, in order; every entry has
    the same sources. Raises (naming the argument) for values that arrived non-finite, before anything is written."""
    arrays = [{name: v.array() for name, v in e.values.items()} for e in entries]
    if len(entries) == 1:
        return entries[0].indices, arrays[0], None
    indices = np.concatenate([e.indices for e in entries])
    values = {name: np.concatenate([a[name] for a in arrays]) for name in arrays[0]}
    batch = np.repeat(np.arange(len(entries)), [e.indices.size for e in entries])
    return indices, values, batch
