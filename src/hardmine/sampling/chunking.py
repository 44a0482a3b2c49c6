"""Amortised mining: several batches drawn in one vectorised call (a chunk), and updates buffered until it ends.

Per-call Python and numpy dispatch, not arithmetic, is what a mining step costs, so the sampler draws `chunk`
batches at once and writes the updates of `chunk` batches to the memory and the sum tree at once. Priorities are
then at most a chunk stale, as they already are under DataLoader prefetching. With chunk = 1 the draws are, call
for call, those of one batch at a time.

`draw_by_priority` and `draw_from_subset` return a `Chunk` of global batches (every rank draws the same and takes
its slice); the epoch plans (hardmine.sampling.plans) call them. The updates of consumed batches wait in the
memory's write queue (hardmine.sampling.write_queue) until it drains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hardmine.sampling.sumtree import SumTree


@dataclass
class Yielded:
    """A batch as this rank yielded it: its indices [B] (int64), its weights [B] (float32, on the device of the
    latest losses), whether they are finite and non-negative by construction (`valid`), and then weights / B
    (`over_size`, or None)."""

    indices: np.ndarray
    weights: torch.Tensor
    over_size: torch.Tensor | None = None
    valid: bool = True


    @staticmethod
    def selected(indices: np.ndarray, weights: np.ndarray, valid: bool) -> Yielded:
        """A batch policy's weights [B] (float64, decided by `update`) of the batch `indices`, as float32; with
        weights / B when they are `valid` (finite and non-negative by construction)."""
        if not valid:
            return Yielded(indices, torch.from_numpy(weights.astype(np.float32)), None, False)
        both = with_means(weights, [weights.size])
        return Yielded(indices, both[0], both[1])


@dataclass
class Chunk:
    """Global batches first, first + 1, ... of an epoch: int64 indices [S_b] and float64 weights [S_b] each."""

    first: int
    indices: list[np.ndarray]
    weights: list[np.ndarray]
    shares: list[Yielded] = field(default_factory=list)
    """This rank's share of each batch (int64 [B]) with its weights, set by `share`."""
    served: list[np.ndarray] = field(default_factory=list)
    """Copies of the shares' indices, the arrays the sampler yields."""
    keys: list[bytes] = field(default_factory=list)
    """The bytes of each share (how `update` and `weights` find a batch)."""

    @property
    def end(self) -> int:
        """One past the last batch number of the chunk."""
        return self.first + len(self.indices)


def _philox(seed: int, epoch: int, k: int) -> np.random.Generator:
    """The random stream of the chunk that starts at batch k of `epoch` (a batch's own with chunk = 1)."""
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, 0, k, epoch]))


def draw_by_priority(tree: SumTree, policy: Any, num_samples: int, seed: int, epoch: int, first: int,
                     sizes: list[int], stride: int, forced: np.ndarray, labels: np.ndarray | None = None) -> Chunk:
    """Batches first .. first + len(sizes) - 1 drawn with replacement: a `policy.floor` fraction uniformly, the
    rest from `tree`, after the guards' `forced` samples due in each (batch k's start at k * stride of them).

    All draws come from one stream and one tree descent; with several batches they are shuffled across batches
    (the tree returns them nearly sorted). Importance weights are computed per batch (a batch's maximum may
    normalise them), from the mixture probability of each draw, through the guards' `adjust_probabilities`
    (`labels` [N]: the memory's, or None).
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
    relative = policy.guards_implement("adjust_probabilities")
    if (policy.weights_rows and len(set(sizes)) == 1 and not any(t.size for t in taken)
            and not policy.guards_implement("adjust_weights")):
        if relative:
            probabilities = policy.relative_probabilities(probabilities, drawn, labels)
        rows = policy.weights(probabilities.reshape(len(sizes), sizes[0]), n)  # every batch in one call
        return Chunk(first, list(drawn.reshape(len(sizes), sizes[0])), list(rows))
    indices, weights, at = [], [], 0
    for t, count in zip(taken, free):
        own, p = drawn[at: at + count], probabilities[at: at + count]
        at += count
        if t.size:
            own = np.concatenate([t, own])
            p = np.concatenate([np.full(t.size, 1.0 / n), p])  # forced: as if uniform
        indices.append(own)
        weights.append(policy.weights(policy.relative_probabilities(p, own, labels) if relative else p, n))
    return Chunk(first, indices, weights)


def draw_from_subset(permutation: np.ndarray, subset: np.ndarray | None, subset_weights: np.ndarray | None,
                     policy: Any, first: int, sizes: list[int], stride: int) -> Chunk:
    """Batches first .. of a shuffled pass: batch k holds the permutation's positions k * stride onwards (of the
    subset when a policy chose one), weighted by the subset's weights (ones for all the data), guards' caps."""
    samples = permutation.size
    start = first * stride
    positions = permutation[(start + np.arange((len(sizes) - 1) * stride + sizes[-1])) % samples]
    if not policy.caps_weights:  # every weight is the subset's (or one)
        chosen = positions if subset is None else subset[positions]
        every = np.ones(positions.size) if subset is None else subset_weights[positions]
        ends = [(b * stride, b * stride + size) for b, size in enumerate(sizes)]
        return Chunk(first, [chosen[lo:hi] for lo, hi in ends], [every[lo:hi] for lo, hi in ends])
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


def share(chunk: Chunk, rank: int, world_size: int, device: torch.device) -> Chunk:
    """Cut this rank's share of every batch of `chunk` (the rank-th of `world_size` equal slices), with its weights
    as float32 tensors [B] on `device` (one copy for the whole chunk) and weights / B beside them (finite and
    non-negative by construction), and the copies the sampler yields (views of one array, so that a batch changed
    in place by the loop changes nothing here). Returns `chunk`."""
    if world_size == 1:
        batches = [np.ascontiguousarray(b, dtype=np.int64) for b in chunk.indices]
        flat = np.concatenate(chunk.weights)
    else:
        mine = [slice(rank * (b.size // world_size), (rank + 1) * (b.size // world_size)) for b in chunk.indices]
        batches = [np.ascontiguousarray(b[m], dtype=np.int64) for b, m in zip(chunk.indices, mine)]
        flat = np.concatenate([w[m] for w, m in zip(chunk.weights, mine)])
    sizes = [b.size for b in batches]
    both = with_means(flat, sizes)
    if device.type != "cpu":
        both = both.pin_memory().to(device, non_blocking=True)
    chunk.shares = [Yielded(b, w, o) for b, w, o in zip(batches, both[0].split(sizes), both[1].split(sizes))]
    chunk.served = np.split(np.concatenate(batches), np.cumsum(sizes[:-1]))
    chunk.keys = [b.tobytes() for b in batches]
    return chunk


def with_means(weights: np.ndarray, sizes: list[int]) -> torch.Tensor:
    """float32 [2, M]: the weights [M] of consecutive batches of `sizes`, and each over its batch's size (with
    which `hm.reduce`'s mean is one dot product)."""
    return torch.from_numpy(np.stack([weights, weights / np.repeat(sizes, sizes)]).astype(np.float32))
