"""The user's own sampler as the source of an epoch's draws (`HardExampleSampler(..., base_sampler=...)`).

`BaseSource` draws the base sampler's epoch at the epoch's start (after `set_epoch(epoch)` where it has one),
flattens a batch sampler's lists in order, checks every index against the memory's N, and records the draws in
the epoch state (`base`, int64) with its generator's state after them (`base_rng`), so a resumed run serves the
same batches and the next epochs draw the same. Mining applies on top, one plan per kind:
- `BasePass` (uniform, warm-up, subset policies): the base's order, kept; a subset policy keeps the draws in its
  subset, in the base's order, with their subset weights.
- `BasePriority` (priority policies): draws with replacement over the base's draws (positions 0..M-1): a `floor`
  fraction uniformly over them, which is the base's distribution q, the rest by the policy's priority of each
  draw, so sample i is drawn with r_i = floor q_i + (1 - floor) q_i p_i / sum_j q_j p_j; the importance weights
  are the policy's over positions, (M x position probability)^-beta = (r_i / q_i)^-beta: relative to the base
  (the loss stays unbiased for the base's distribution, not for uniform).
- `BaseCandidates` (candidate policies): candidate batch k is the next candidates x B draws of the base's stream
  (the base iterated as many times as the epoch needs: an epoch has as many steps as without a base); repeats
  are possible when the base draws with replacement.
A plain sampler (no base) builds the plans the policy names, unchanged.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from hardmine.distributed import agree_on_config
from hardmine.sampling.chunking import Chunk, draw_by_priority
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.plans import PLANS, CandidateBatches, EpochPlan, PriorityDraws, Shape, ShuffledPass
from hardmine.sampling.sumtree import SumTree

_BATCH_TYPES = (list, tuple, np.ndarray, torch.Tensor)


class BasePass(ShuffledPass):
    """A pass in the base's order (the epoch state's `subset`: the base's draws, or those in a policy's subset)."""

    @staticmethod
    def settle(state: dict[str, Any], shape: Shape) -> None:
        """Turn the base's draws into the pass's ordered subset and weights."""
        order, subset, weights = state["base"], state["subset"], state["subset_weights"]
        if subset is None:
            kept, kept_weights = order.copy(), np.ones(order.size)
        else:
            by = np.argsort(subset, kind="stable")
            pos = np.minimum(np.searchsorted(subset[by], order), subset.size - 1)
            hit = subset[by][pos] == order if subset.size else np.zeros(order.size, dtype=bool)
            kept, kept_weights = order[hit], weights[by][pos[hit]]
        if not kept.size:
            raise ValueError(f"base_sampler drew {order.size} indices this epoch, none of them in the policy's "
                             f"subset of {0 if subset is None else subset.size}: nothing to train on")
        state.update(subset=kept, subset_weights=kept_weights, num_batches=shape.count(kept.size))

    def draw(self, k: int, count: int) -> Chunk:
        if self._permutation is None:
            self._permutation = np.arange(self.state["subset"].size)  # the base's order, not shuffled
        return super().draw(k, count)


class BasePriority(PriorityDraws):
    """Priority draws over the base's draws, weighted relative to the base's distribution (module docstring)."""

    _forced: np.ndarray | None = None

    def draw(self, k: int, count: int) -> Chunk:
        draws, memory, shape = self.state["base"], self.memory, self.shape
        if self._tree is None:
            self._tree = SumTree(self.policy.priorities(memory)[draws])
            # a guard's forced sample at its first position among the draws; one the base never drew is not forced
            values, first = np.unique(draws, return_index=True)
            forced = self.state["forced"]
            at = np.minimum(np.searchsorted(values, forced), values.size - 1)
            self._forced = first[at[values[at] == forced]].astype(np.int64)
        sizes = [shape.global_size(j, memory.num_samples, self.num_batches) for j in range(k, k + count)]
        labels = None if memory.labels is None else memory.labels[draws]
        chunk = draw_by_priority(self._tree, self.policy, draws.size, self.seed, self.epoch, k, sizes,
                                 shape.batch_size * shape.world_size, self._forced, labels)
        return Chunk(k, [draws[p] for p in chunk.indices], chunk.weights)

    def refresh(self, written: np.ndarray) -> None:
        if self._tree is not None:
            draws = self.state["base"]
            pos = np.flatnonzero(np.isin(draws, written))
            self._tree.update(pos, self.policy.priorities(self.memory, draws[pos]))


class BaseCandidates(CandidateBatches):
    """Candidate batch k: the base stream's draws k x S .. (k + 1) x S - 1 (S: the first batch's size)."""

    @classmethod
    def needed(cls, state: dict[str, Any], shape: Shape, policy: Any, num_samples: int) -> int:
        """Draws the epoch's candidate batches take."""
        return sum(cls.drawn_size(k, state, shape, policy, num_samples, False) for k in range(state["num_batches"]))

    def draw(self, k: int, count: int) -> Chunk:
        stream, n = self.state["base"], self.memory.num_samples
        stride = self.drawn_size(0, self.state, self.shape, self.policy, n, False)
        sizes = [self.drawn_size(j, self.state, self.shape, self.policy, n, False) for j in range(k, k + count)]
        indices = [stream[j * stride: j * stride + size].copy() for j, size in zip(range(k, k + count), sizes)]
        return Chunk(k, indices, [np.full(size, np.nan) for size in sizes])


_BASED: dict[type[EpochPlan], type[EpochPlan]] = {
    ShuffledPass: BasePass, PriorityDraws: BasePriority, CandidateBatches: BaseCandidates}
_BY_MODE = {plan.mode: _BASED[plan] for plan in PLANS.values()}


class BaseSource:
    """Where an epoch plan's draws come from: the policy's plan alone (`sampler` None), or on top of the user's
    `sampler` (a Sampler of indices or a batch sampler); see the module docstring."""

    def __init__(self, sampler: Any, num_samples: int) -> None:
        self.sampler, self.num_samples = sampler, num_samples
        self.generator: torch.Generator | None = None
        self._drawn: tuple[int, list[np.ndarray]] | None = None  # (epoch, its passes): re-deciding draws no more
        if sampler is None:
            return
        if isinstance(sampler, Iterator) or not isinstance(sampler, Iterable):
            what = "an iterator, consumed once" if isinstance(sampler, Iterable) else "not iterable"
            raise TypeError(f"base_sampler must be a Sampler (or batch sampler) that yields a new pass of indices "
                            f"each time it is iterated, got {type(sampler).__name__}, {what}")
        owner = sampler if hasattr(sampler, "generator") else getattr(sampler, "sampler", None)  # BatchSampler
        if hasattr(owner, "generator"):
            if owner.generator is None:
                raise ValueError(f"base_sampler {type(owner).__name__} has generator=None: it would draw from "
                                 "torch's global random state and a resumed run could not repeat it; pass "
                                 "generator=torch.Generator().manual_seed(seed)")
            if not isinstance(owner.generator, torch.Generator):
                raise TypeError(f"base_sampler's generator must be a torch.Generator, got "
                                f"{type(owner.generator).__name__}")
            self.generator = owner.generator

    def begin(self, plan: type[EpochPlan], policy: Any, memory: ScoreMemory, shape: Shape, seed: int,
              epoch: int) -> EpochPlan:
        """The plan `plan` of `epoch`, started; with a base sampler its draws are recorded in the epoch state."""
        if self.sampler is None:
            return plan.begin(policy, memory, shape, seed, epoch)
        based = next((_BASED[c] for c in plan.__mro__ if c in _BASED), None)
        if based is None:
            raise TypeError(f"base_sampler cannot feed the epoch plan {plan.__name__}: a plan must derive from "
                            "ShuffledPass, PriorityDraws or CandidateBatches")
        state = plan.start(policy, memory, shape, seed, epoch)
        needed = based.needed(state, shape, policy, memory.num_samples) if based is BaseCandidates else 1
        state["base"] = self._draws(epoch, needed)
        state["base_rng"] = None if self.generator is None else self.generator.get_state().numpy().copy()
        if shape.world_size > 1:  # every rank cuts its share of the same global batches
            agree_on_config("HardExampleSampler base_sampler", {"base_sampler draws": state["base"]})
        if based is BasePass:
            BasePass.settle(state, shape)
        return based(policy, memory, shape, seed, epoch, state)

    def restore(self, policy: Any, memory: ScoreMemory, shape: Shape, seed: int, epoch: int,
                state: dict[str, Any]) -> EpochPlan:
        """The plan of a saved epoch state checked by `check_state`; the base's generator takes its saved state."""
        if state["base"] is None:  # a plain epoch state holds no base keys
            plain = {key: value for key, value in state.items() if key not in ("base", "base_rng")}
            return PLANS[state["mode"]](policy, memory, shape, seed, epoch, plain)
        if state["base_rng"] is not None:
            self.generator.set_state(torch.from_numpy(state["base_rng"].copy()))
        self._drawn = (epoch, [state["base"]])
        return _BY_MODE[state["mode"]](policy, memory, shape, seed, epoch, state)

    def check_state(self, state: dict[str, Any], started: bool) -> None:
        """Raise unless this source can restore the checked epoch state `state` of an epoch that `started` or not
        (nothing changes)."""
        if state["base"] is not None and self.sampler is None:
            raise ValueError("state['epoch_state'] holds a base_sampler's draws, but this sampler has no "
                             "base_sampler: build it with the same base_sampler")
        if state["base"] is None and self.sampler is not None and started:
            raise ValueError("state['epoch_state'] was saved by a sampler without base_sampler, but this one has "
                             f"base_sampler {type(self.sampler).__name__}")
        rng = state["base_rng"]
        if rng is not None and (self.generator is None or rng.size != self.generator.get_state().numel()):
            size = None if self.generator is None else self.generator.get_state().numel()
            raise ValueError(f"state['epoch_state']['base_rng'] holds a generator state of {rng.size} bytes, but "
                             f"this base_sampler's generator takes {size}")

    def _draws(self, epoch: int, needed: int) -> np.ndarray:
        """At least `needed` draws of the base in `epoch` (at least one pass), drawing only what is missing."""
        passes = self._drawn[1] if self._drawn is not None and self._drawn[0] == epoch else []
        while not passes or sum(p.size for p in passes) < needed:
            passes.append(self._one_pass(epoch))
        self._drawn = (epoch, passes)
        return np.concatenate(passes)

    def _one_pass(self, epoch: int) -> np.ndarray:
        """One iteration of the base sampler: its indices, flattened (int64), checked against N."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        items = list(self.sampler)
        if not items:
            raise ValueError(f"base_sampler {type(self.sampler).__name__} yielded no indices in epoch {epoch}")
        if isinstance(items[0], _BATCH_TYPES):
            parts = [_integers(item, at) for at, item in enumerate(items)]
            drawn = np.concatenate(parts)
        else:
            drawn = np.asarray(items) if all(type(i) is int for i in items) else \
                np.array([_integers(i, at)[0] for at, i in enumerate(items)], dtype=np.int64)
        drawn = drawn.astype(np.int64, copy=False)
        bad = np.flatnonzero((drawn < 0) | (drawn >= self.num_samples))
        if bad.size:
            raise ValueError(f"base_sampler yielded index {int(drawn[bad[0]])} (draw {int(bad[0])} of epoch "
                             f"{epoch}), but the memory holds N = {self.num_samples} samples (indices 0 .. "
                             f"{self.num_samples - 1}): build the memory over the base sampler's data set")
        return drawn


def check_memory(memory: Any) -> ScoreMemory:
    """`memory` if it is a ScoreMemory, else a TypeError (with a hint when a trainer passed a sampler there)."""
    if not isinstance(memory, ScoreMemory):
        hint = ("; a trainer rebuilt this batch sampler around its own sampler (Lightning does under DDP): use "
                "hardmine.integrations.lightning.HardMiningCallback.dataloader, or "
                "Trainer(use_distributed_sampler=False); to mine on top of your own sampler pass it as "
                "base_sampler=") if isinstance(memory, torch.utils.data.Sampler) else ""
        raise TypeError(f"memory must be a ScoreMemory, got {type(memory).__name__}{hint}")
    return memory


def _integers(item: Any, at: int) -> np.ndarray:
    """The indices (int64 [k]) of the base's item number `at`: an index, or a batch of them."""
    if isinstance(item, torch.Tensor):
        item = item.numpy(force=True)
    if isinstance(item, np.ndarray) and item.dtype.kind in "iu" and item.ndim <= 1:
        return item.reshape(-1).astype(np.int64)
    values = item if isinstance(item, (list, tuple)) else [item]
    try:
        if any(isinstance(i, bool) for i in values):
            raise TypeError
        return np.array([operator.index(i) for i in values], dtype=np.int64)
    except TypeError:
        raise TypeError(f"base_sampler must yield integer indices (or lists of them), but item {at} is "
                        f"{item!r} of type {type(item).__name__}") from None
