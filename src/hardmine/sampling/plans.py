"""Epoch plans: how an epoch's batches are drawn, one class per policy kind; the policy supplies its plan.

A plan is made at an epoch's start (`start`: what the start decides, saved in the sampler's state as its epoch
state) and draws the epoch's global batches a chunk at a time (`draw`); every rank draws the same and takes its
share. `Policy.epoch_plan(epoch)` names the plan of each epoch, so the sampler never asks what kind a policy is:
- `ShuffledPass`: a shuffled pass over all the data (warm-up, and kinds that draw nothing from the memory);
- `SubsetPass`: a shuffled pass over the subset (and weights) a subset policy chose at the epoch's start;
- `PriorityDraws`: draws with replacement from a sum tree of the policy's priorities, re-prioritised as the
  memory writes the updates (`refresh`);
- `CandidateBatches`: uniformly drawn candidate batches (candidates x B), each from a stream of its own;
  `update` selects the B to back-propagate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hardmine.sampling.chunking import Chunk, draw_by_priority, draw_from_subset
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.sumtree import SumTree

SUBSET_STREAM = 2**32 - 1  # the random stream of an epoch's subset, apart from the per-batch streams
CANDIDATE_STREAM = 1  # the Philox counter word of candidate batches (priority draws use 0)


@dataclass(frozen=True)
class Shape:
    """How an epoch's samples become batches: B per rank, the world size, a fixed number of batches (or None),
    drop_last."""

    batch_size: int
    world_size: int
    fixed_batches: int | None
    drop_last: bool

    def count(self, samples: int) -> int:
        """Batches of an epoch over `samples` samples."""
        if self.fixed_batches is not None:
            return self.fixed_batches
        full = self.batch_size * self.world_size
        if self.drop_last and samples < full:
            raise ValueError(f"drop_last=True but the {samples} samples of an epoch do not fill one batch of "
                             f"batch_size {self.batch_size} x world size {self.world_size}: every batch would hold "
                             "repeats; lower batch_size or set drop_last=False")
        return samples // full if self.drop_last else -(-samples // full)

    def global_size(self, k: int, samples: int, num_batches: int) -> int:
        """Indices in global batch k of an epoch of `num_batches` over `samples`: B x world, the remainder last
        (without drop_last), always a non-empty multiple of the world size."""
        full = self.batch_size * self.world_size
        size = full
        if self.fixed_batches is None and not self.drop_last and k == num_batches - 1 and samples % full:
            size = samples - k * full
        return -(-size // self.world_size) * self.world_size


def fresh_state(shape: Shape, num_samples: int) -> dict[str, Any]:
    """The epoch state of a shuffled pass over all `num_samples` samples."""
    return {"mode": "subset", "subset": None, "subset_weights": None, "forced": np.zeros(0, dtype=np.int64),
            "num_batches": shape.count(num_samples)}


class EpochPlan:
    """One epoch's draws (`state`: what its start decided, as saved; `seed`, `epoch`: the random streams)."""

    mode: ClassVar[str] = "subset"
    """How the epoch state names the plan (saved; `PLANS` finds the class again on load)."""
    undecided_weights: ClassVar[bool] = False
    """Whether drawn batches hold NaN weights until `update` decides them (a saved state may then hold NaN)."""

    def __init__(self, policy: Any, memory: ScoreMemory, shape: Shape, seed: int, epoch: int,
                 state: dict[str, Any]) -> None:
        self.policy, self.memory, self.shape, self.seed, self.epoch, self.state = \
            policy, memory, shape, seed, epoch, state

    @classmethod
    def start(cls, policy: Any, memory: ScoreMemory, shape: Shape, seed: int, epoch: int) -> dict[str, Any]:
        """The epoch state this plan decides at the epoch's start (after the policy's `start_epoch`)."""
        return fresh_state(shape, memory.num_samples)

    @classmethod
    def begin(cls, policy: Any, memory: ScoreMemory, shape: Shape, seed: int, epoch: int) -> EpochPlan:
        """The plan of `epoch`, started (after the policy's `start_epoch`)."""
        return cls(policy, memory, shape, seed, epoch, cls.start(policy, memory, shape, seed, epoch))

    @property
    def num_batches(self) -> int:
        """Batches of the epoch."""
        return self.state["num_batches"]

    def draw(self, k: int, count: int) -> Chunk:
        """Global batches k .. k + count - 1 (the memory's queue is drained before)."""
        raise NotImplementedError

    def refresh(self, written: np.ndarray) -> None:
        """The memory wrote samples `written` (distinct, int64): re-derive what the plan keeps of them."""

    def check_update(self, local: np.ndarray, ledger: Any) -> None:
        """Raise unless `update` may take the batch `local` [B] (`ledger`: the sampler's Ledger)."""

    def check_weights(self, weights: Any) -> None:
        """Raise unless `weights` of a batch may be asked for now."""

    @classmethod
    def drawn_size(cls, k: int, state: dict[str, Any], shape: Shape, policy: Any, num_samples: int,
                   use_saved_config: bool) -> int | None:
        """Indices in global batch k of an epoch decided as `state` (None: not known before a saved policy
        configuration is taken); checks a saved drawn batch."""
        return shape.global_size(k, num_samples, state["num_batches"])


class ShuffledPass(EpochPlan):
    """A shuffled pass over all the data (or the subset in `state`): batch k holds the permutation's positions
    k x B x world onwards, with the subset's weights (ones for all the data) through the guards' caps."""

    _permutation: np.ndarray | None = None

    def draw(self, k: int, count: int) -> Chunk:
        subset, shape = self.state["subset"], self.shape
        samples = self.memory.num_samples if subset is None else subset.size
        if self._permutation is None:
            self._permutation = np.random.default_rng([self.seed, self.epoch]).permutation(samples)
        sizes = [shape.global_size(j, samples, self.num_batches) for j in range(k, k + count)]
        return draw_from_subset(self._permutation, subset, self.state["subset_weights"], self.policy, k, sizes,
                                shape.batch_size * shape.world_size)

    @classmethod
    def drawn_size(cls, k: int, state: dict[str, Any], shape: Shape, policy: Any, num_samples: int,
                   use_saved_config: bool) -> int | None:
        subset = state["subset"]
        return shape.global_size(k, num_samples if subset is None else subset.size, state["num_batches"])


class SubsetPass(ShuffledPass):
    """A shuffled pass over the subset a subset policy chooses at the epoch's start (`guarded_subset`)."""

    @classmethod
    def start(cls, policy: Any, memory: ScoreMemory, shape: Shape, seed: int, epoch: int) -> dict[str, Any]:
        state = fresh_state(shape, memory.num_samples)
        rng = np.random.default_rng([seed, epoch, SUBSET_STREAM])
        subset, weights = policy.guarded_subset(memory, rng)
        state.update(subset=subset, subset_weights=weights,
                     num_batches=shape.count(memory.num_samples if subset is None else subset.size))
        return state


class PriorityDraws(EpochPlan):
    """Batches drawn with replacement by priority from a sum tree built at the first draw, after the guards'
    forced samples (shuffled at the epoch's start)."""

    mode = "priority"
    _tree: SumTree | None = None

    @classmethod
    def start(cls, policy: Any, memory: ScoreMemory, shape: Shape, seed: int, epoch: int) -> dict[str, Any]:
        state = fresh_state(shape, memory.num_samples)
        state["mode"] = cls.mode
        forced = policy.forced()
        if forced.size:
            state["forced"] = np.random.default_rng([seed, epoch, SUBSET_STREAM]).permutation(forced)
        return state

    def draw(self, k: int, count: int) -> Chunk:
        memory, shape = self.memory, self.shape
        if self._tree is None:
            self._tree = SumTree(self.policy.priorities(memory))
        n = memory.num_samples
        sizes = [shape.global_size(j, n, self.num_batches) for j in range(k, k + count)]
        return draw_by_priority(self._tree, self.policy, n, self.seed, self.epoch, k, sizes,
                                shape.batch_size * shape.world_size, self.state["forced"], memory.labels)

    def refresh(self, written: np.ndarray) -> None:
        if self._tree is not None:
            self._tree.update(written, self.policy.priorities(self.memory, written))


class CandidateBatches(EpochPlan):
    """Candidate batch k: candidates x its batch's size (at most N) distinct indices drawn uniformly from a
    stream of its own, a pure function of (seed, epoch, k), independent of the memory; its weights are NaN until
    `update` selects."""

    mode = "candidates"
    undecided_weights = True

    @classmethod
    def start(cls, policy: Any, memory: ScoreMemory, shape: Shape, seed: int, epoch: int) -> dict[str, Any]:
        state = fresh_state(shape, memory.num_samples)
        state.update(mode=cls.mode, num_batches=shape.count(policy.epoch_samples(memory.num_samples)))
        return state

    def draw(self, k: int, count: int) -> Chunk:
        n, drawn = self.memory.num_samples, []
        for j in range(k, k + count):
            size = self.drawn_size(j, self.state, self.shape, self.policy, n, False)
            rng = np.random.Generator(np.random.Philox(key=self.seed, counter=[0, CANDIDATE_STREAM, j, self.epoch]))
            drawn.append((rng.choice(n, size, replace=False).astype(np.int64), np.full(size, np.nan)))
        return Chunk(k, [d[0] for d in drawn], [d[1] for d in drawn])

    def check_update(self, local: np.ndarray, ledger: Any) -> None:
        if not ledger.knows(local):
            raise ValueError(f"indices (first: {local[:5].tolist()}, {local.size} in all) are not a candidate batch "
                             f"this sampler yielded: pass update() the whole candidate batch "
                             f"({self.policy.candidates} x batch_size indices, in the order yielded) with the "
                             "losses of all of them")

    def check_weights(self, weights: Any) -> None:
        if bool(weights.isnan().any()):
            raise ValueError("weights of a candidate batch are decided by update(): call sampler.update(indices, "
                             "losses of all candidates) first")  # before the batch counts as consumed

    @classmethod
    def drawn_size(cls, k: int, state: dict[str, Any], shape: Shape, policy: Any, num_samples: int,
                   use_saved_config: bool) -> int | None:
        if use_saved_config:
            return None
        samples = policy.epoch_samples(num_samples)
        size = min(num_samples, shape.global_size(k, samples, state["num_batches"]) * policy.candidates)
        return size - size % shape.world_size


PLANS: dict[str, type[EpochPlan]] = {plan.mode: plan for plan in (ShuffledPass, PriorityDraws, CandidateBatches)}
"""The plan class of each saved epoch mode (a subset pass draws as a shuffled pass over its saved subset)."""
