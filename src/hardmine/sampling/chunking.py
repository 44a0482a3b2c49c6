"""Amortised mining: several batches drawn in one vectorised call (a chunk), and updates buffered until it ends.

Per-call Python and numpy dispatch, not arithmetic, is what a mining step costs, so the sampler draws `chunk`
batches at once and writes the updates of `chunk` batches to the memory and the sum tree at once. Priorities are
then at most a chunk stale, as they already are under DataLoader prefetching. With chunk = 1 the draws are, call
for call, those of one batch at a time.

`draw_by_priority` and `draw_from_subset` return a `Chunk` of global batches (every rank draws the same and takes
its slice); `UpdateBuffer` holds the validated updates of the batches consumed since the last write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    served: list[np.ndarray] = field(default_factory=list)
    """Copies of `batches`, the arrays the sampler yields."""
    keys: list[bytes] = field(default_factory=list)
    """The bytes of each share (how `update` and `weights` find a batch)."""

    @property
    def end(self) -> int:
        """One past the last batch number of the chunk."""
        return self.first + len(self.indices)


def _philox(seed: int, epoch: int, k: int) -> np.random.Generator:
    """The random stream of the chunk that starts at batch k of `epoch` (a batch's own with chunk = 1)."""
    return np.random.Generator(np.random.Philox(key=seed, counter=[0, 0, k, epoch]))


def draw_by_priority(tree: SumTree, policy: PriorityPolicy, num_samples: int, seed: int, epoch: int, first: int,
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
                     policy: Policy, first: int, sizes: list[int], stride: int) -> Chunk:
    """Batches first .. of a shuffled pass: batch k holds the permutation's positions k * stride onwards (of the
    subset when a policy chose one), weighted by the subset's weights (ones for all the data), guards' caps."""
    samples = permutation.size
    start = first * stride
    positions = permutation[(start + np.arange((len(sizes) - 1) * stride + sizes[-1])) % samples]
    if not policy.guards and type(policy).cap is Policy.cap:  # no cap: every weight is the subset's (or one)
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


@dataclass
class Pending:
    """One consumed batch's update: indices [B] (validated int64) and its values by source name."""

    indices: np.ndarray
    values: dict[str, HostValues]
    checked: bool = False
    """Whether the values passed the memory's and the policy's checks (values still on an accelerator are
    checked when they arrive)."""

    @property
    def ready(self) -> bool:
        return all(v.ready for v in self.values.values())


class UpdateBuffer:
    """The updates of the batches consumed since the last write, in order.

    The common case (one process, host values, no statistics) is copied into one growing float64 array of
    scores, with the batches' index arrays kept as they are (`stage`, `commit`); anything else is kept as
    `Pending` entries. The sampler keeps one kind at a time.

    The per-step path calls as few numpy functions as it can: right after a training step numpy's code is cold
    (torch's kernels have evicted it from the CPU caches), and a first numpy reduction then costs some 15 us, so
    a CPU tensor of scores is copied and ranged by torch (`copy_`, `aminmax`), whose code the step just ran.
    """

    def __init__(self) -> None:
        self.entries: list[Pending] = []
        self.parts: list[np.ndarray] = []
        self.scores = np.empty(0, dtype=np.float64)
        self._scores_tensor = torch.from_numpy(self.scores)
        self._staged_at = 0
        self.size = 0
        self.sizes: list[int] = []

    def __len__(self) -> int:
        return len(self.sizes) + len(self.entries)

    def stage(self, scores: np.ndarray | torch.Tensor, low: float,
              high: float) -> tuple[np.ndarray, float, float] | None:
        """Copy a batch's real-valued scores [B] (a numpy array or a detached CPU tensor) in after the buffered
        ones, as float64, without keeping them yet: the copy with its smallest and largest value, or None when
        one of them is NaN or outside [low, high] (the caller finds out which). `commit` keeps them."""
        at = self.size
        end = at + scores.shape[0]
        if end > self.scores.size:
            grown = max(end, 2 * self.scores.size)
            self.scores = np.concatenate([self.scores[:at], np.empty(grown - at, dtype=np.float64)])
            self._scores_tensor = torch.from_numpy(self.scores)
        self._staged_at = at
        if end == at:
            return self.scores[at:end], 0.0, 0.0
        if isinstance(scores, torch.Tensor):
            view = self._scores_tensor[at:end]
            view.copy_(scores)
            smallest, largest = (v.item() for v in torch.aminmax(view))
        else:
            view = self.scores[at:end]
            view[...] = scores
            smallest, largest = float(view.min()), float(view.max())
        if not (smallest >= low and largest <= high):  # a NaN fails both
            return None
        return self.scores[at:end], smallest, largest

    def commit(self, indices: np.ndarray) -> None:
        """Keep the scores just staged, of the samples `indices` [B] (validated int64; kept without a copy: the
        sampler passes its own arrays, or `check_indices`' copies). A write between `stage` and `commit` (a
        policy or guard that read the memory) emptied the buffer: the staged scores move to its start."""
        at, size = self._staged_at, self.size
        if at != size:
            self.scores[size: size + indices.size] = self.scores[at: at + indices.size].copy()
        self.parts.append(indices)
        self.size += indices.size
        self.sizes.append(indices.size)

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
        """(indices [M], {"scores": [M]}, batch number [M], batches) of the committed batches, and empty them.
        The scores are a view, valid until the next `stage`."""
        sizes, size, parts = self.sizes, self.size, self.parts
        self.sizes, self.size, self.parts = [], 0, []
        batch = np.repeat(np.arange(len(sizes)), sizes) if len(sizes) > 1 else None
        indices = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return indices, {"scores": self.scores[:size]}, batch, len(sizes)

    def clear(self) -> None:
        self.entries, self.sizes, self.size, self.parts = [], [], 0, []


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
