"""HardExampleSampler: a batch sampler for DataLoader that draws the next batch by difficulty."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np
import torch

from hardmine._checks import check_indices, check_positive_int, check_values, to_numpy
from hardmine.distributed import all_gather_1d, rank_and_world
from hardmine.memory import ScoreMemory
from hardmine.policies import Policy, build_policy
from hardmine.sumtree import SumTree

_PENDING_BATCHES = 256  # yielded batches whose importance weights stay available (covers DataLoader prefetching)


class HardExampleSampler:
    """Yields int64 index batches drawn from a policy's priorities over a ScoreMemory; pass as `batch_sampler=`.

    memory: the ScoreMemory of the data set (N samples); `update` writes to it.
    batch_size: B, samples per batch on this process (the global batch is B x world size).
    num_batches: batches per epoch; default ceil(N / global batch), floor with drop_last.
    policy: a registered name ("uniform", "importance", ...) or a Policy object.
    seed: every draw is a function of (seed, epoch, batch number) and the priorities, on every rank alike.
    drop_last: without it the last batch of an epoch holds the remaining N mod (global batch) samples.

    An epoch is `num_batches` batches. `iter()` continues the current epoch where the last iterator stopped and
    has no other side effect, so DataLoader may call it more than once; once an epoch is exhausted, the next
    iterator starts the next epoch (or the one given to `set_epoch`). With DataLoader workers, batches are drawn
    `prefetch_factor * num_workers` ahead of the training loop and count as drawn in `state_dict()`.
    """

    def __init__(self, memory: ScoreMemory, batch_size: int, num_batches: int | None = None,
                 policy: str | Policy = "importance", seed: int = 0, drop_last: bool = False) -> None:
        if not isinstance(memory, ScoreMemory):
            raise TypeError(f"memory must be a ScoreMemory, got {type(memory).__name__}")
        self.memory = memory
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.policy = build_policy(policy)
        self.seed = check_positive_int("seed", seed, minimum=0)
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        self.drop_last = drop_last
        self.rank, self.world_size = rank_and_world()
        global_batch = self.batch_size * self.world_size
        n = memory.num_samples
        default = max(1, n // global_batch) if drop_last else -(-n // global_batch)
        self.num_batches = default if num_batches is None else check_positive_int("num_batches", num_batches)
        self._partial_last = num_batches is None and not drop_last and n % global_batch != 0
        self._epoch = 0
        self._position = 0  # batches drawn in the current epoch
        self._tree: SumTree | None = None
        self._permutation: np.ndarray | None = None
        self._pending: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._mining_seconds = 0.0
        self._last_weights: np.ndarray | None = None

    def __len__(self) -> int:
        """Batches per epoch."""
        return self.num_batches

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iterator draw epoch `epoch`: from its start, unless it is the current epoch."""
        epoch = check_positive_int("epoch", epoch, minimum=0)
        if epoch != self._epoch:
            self._epoch, self._position = epoch, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._epoch_batches()

    def _epoch_batches(self) -> Iterator[np.ndarray]:
        if self._position >= self.num_batches:
            self._epoch, self._position = self._epoch + 1, 0
        started = time.perf_counter()
        if self._position == 0:
            self.policy.start_epoch(self._epoch, self.memory)
            self._tree = self._permutation = None
        self._mining_seconds += time.perf_counter() - started
        while self._position < self.num_batches:
            started = time.perf_counter()
            batch = self._draw(self._position)
            self._position += 1
            self._mining_seconds += time.perf_counter() - started
            yield batch

    def _global_batch_size(self, k: int) -> int:
        full = self.batch_size * self.world_size
        size = full
        if self._partial_last and k == self.num_batches - 1:
            size = self.memory.num_samples - k * full
        return -(-size // self.world_size) * self.world_size  # every rank gets the same, non-empty share

    def _draw(self, k: int) -> np.ndarray:
        n = self.memory.num_samples
        size = self._global_batch_size(k)
        if self.policy.with_replacement:
            indices, probabilities = self._draw_by_priority(k, size)
            weights = self.policy.weights(probabilities, n)
        else:
            if self._permutation is None:
                self._permutation = np.random.default_rng([self.seed, self._epoch]).permutation(n)
            start = k * self.batch_size * self.world_size
            indices = self._permutation[(start + np.arange(size)) % n]
            weights = np.ones(size, dtype=np.float64)
        share = size // self.world_size
        mine = slice(self.rank * share, (self.rank + 1) * share)
        batch = np.ascontiguousarray(indices[mine], dtype=np.int64)
        self._remember(batch, weights[mine])
        return batch

    def _draw_by_priority(self, k: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self._tree is None:
            self._tree = SumTree(self.policy.priorities(self.memory))
        n = self.memory.num_samples
        rng = np.random.default_rng([self.seed, self._epoch, k])
        mix = self.policy.mix
        from_uniform = rng.random(size) < mix
        indices = np.empty(size, dtype=np.int64)
        indices[from_uniform] = rng.integers(0, n, int(from_uniform.sum()))
        if not from_uniform.all():
            indices[~from_uniform] = self._tree.sample(int((~from_uniform).sum()), rng)
        probabilities = (1.0 - mix) * self._tree.get(indices) / self._tree.total() + mix / n
        return indices, probabilities

    def _remember(self, batch: np.ndarray, weights: np.ndarray) -> None:
        self._pending[batch.tobytes()] = (batch, weights)
        while len(self._pending) > _PENDING_BATCHES:
            self._pending.popitem(last=False)

    def weights(self, indices: Any) -> torch.Tensor:
        """Importance weights [B] (float32) of the samples `indices` [B] of a batch this sampler yielded.

        The weights are those of the probabilities the batch was drawn with (ones for "uniform"), so call this
        before or after `update` alike. `indices` may be the whole batch or any subset of it.
        """
        started = time.perf_counter()
        idx = check_indices("indices", indices, self.memory.num_samples)
        found = self._pending.get(idx.tobytes())
        if found is not None:
            weights = found[1]
        else:
            weights = self._lookup_subset(idx)
        self._last_weights = weights
        self._mining_seconds += time.perf_counter() - started
        return torch.from_numpy(weights.astype(np.float32))

    def _lookup_subset(self, idx: np.ndarray) -> np.ndarray:
        for batch, weights in reversed(self._pending.values()):
            order = np.argsort(batch, kind="stable")
            pos = np.searchsorted(batch[order], idx)
            pos = np.minimum(pos, batch.size - 1)
            if np.array_equal(batch[order][pos], idx):
                return weights[order][pos]
        raise ValueError(f"indices (first: {idx[:5].tolist()}) are not part of any of the last {_PENDING_BATCHES} "
                         "batches this sampler yielded; pass the indices of a yielded batch")

    def update(self, indices: Any, per_sample_loss: Any) -> None:
        """Record what the model found hard: the loss (or any score, higher = harder) [B] of `indices` [B].

        Writes the score memory and re-prioritises those B samples in O(B log N). Under torch.distributed, the
        indices (int64) and losses (float) of every rank are gathered separately, so every rank's memory and
        priorities stay identical. Bad input raises before anything changes.
        """
        started = time.perf_counter()
        idx = check_indices("indices", indices, self.memory.num_samples)
        losses = check_values("per_sample_loss", per_sample_loss, idx.size, indices=idx)
        if self.world_size > 1:
            idx = all_gather_1d(torch.from_numpy(idx)).numpy()
            losses = all_gather_1d(torch.from_numpy(losses)).numpy()
        self.memory.update(idx, losses)
        if self._tree is not None:
            self._tree.update(idx, self.policy.priorities(self.memory, idx))
        self._mining_seconds += time.perf_counter() - started

    def stats(self) -> dict[str, float]:
        """Numbers for logging: epoch, position, coverage, score summary, last batch's weights, mining time (s)."""
        seen = self.memory.get("seen")
        scores = self.memory.get("score")[seen > 0]
        out = {
            "epoch": float(self._epoch),
            "batch": float(self._position),
            "num_batches": float(self.num_batches),
            "fraction_seen": float((seen > 0).mean()),
            "score_mean": float(scores.mean()) if scores.size else float("nan"),
            "score_max": float(scores.max()) if scores.size else float("nan"),
            "mining_seconds": self._mining_seconds,
        }
        if self._last_weights is not None:
            out["weight_mean"] = float(self._last_weights.mean())
            out["weight_min"] = float(self._last_weights.min())
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the exact sequence of batches, with the memory's own state_dict."""
        return {"seed": self.seed, "epoch": self._epoch, "position": self._position,
                "batch_size": self.batch_size, "num_batches": self.num_batches, "world_size": self.world_size,
                "policy_name": self.policy.name, "policy": self.policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`: the next iterator continues with the batch after the last one drawn."""
        for key in ("batch_size", "num_batches", "world_size"):
            if state.get(key) != getattr(self, key):
                raise ValueError(f"state[{key!r}] is {state.get(key)!r} but this sampler has {getattr(self, key)!r}")
        if state.get("policy_name") != self.policy.name:
            raise ValueError(f"state holds policy {state.get('policy_name')!r}, this sampler has {self.policy.name!r}")
        seed = check_positive_int("state['seed']", state["seed"], minimum=0)
        epoch = check_positive_int("state['epoch']", state["epoch"], minimum=0)
        position = check_positive_int("state['position']", state["position"], minimum=0)
        if position > self.num_batches:
            raise ValueError(f"state['position'] is {position}, past the {self.num_batches} batches of an epoch")
        self.policy.load_state_dict(state["policy"])
        self.seed, self._epoch, self._position = seed, epoch, position
        self._tree = self._permutation = None
        self._pending.clear()


class WithIndex(torch.utils.data.Dataset):
    """Wraps a map-style data set so that item i is `(i, *dataset[i])`: the index travels with the batch.

    A tuple item is unpacked after the index; any other item becomes `(i, item)`. Attributes of the wrapped
    data set (e.g. `targets`) are reachable through the wrapper.
    """

    def __init__(self, dataset: Any) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must be map-style (with __getitem__ and __len__), got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple:
        item = self.dataset[index]
        return (index, *item) if isinstance(item, tuple) else (index, item)

    def __getattr__(self, name: str) -> Any:
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
