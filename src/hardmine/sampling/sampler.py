"""HardExampleSampler: a batch sampler for DataLoader that draws the next batch by difficulty."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from hardmine._checks import check_indices, check_int, to_numpy
from hardmine.distributed import agree_on_config, agree_on_errors, all_gather_1d, rank_and_world, rank_offset
from hardmine.inbatch.reduction import mark_valid, marked_valid
from hardmine.memory import ScoreMemory
from hardmine.sampling.chunking import Chunk, Pending, UpdateBuffer, concatenate, draw_by_priority, draw_from_subset
from hardmine.sampling.consumption import Consumption
from hardmine.sampling.host_copy import HostValues
from hardmine.sampling.policies import (
    BatchPolicy,
    CandidatePolicy,
    Policy,
    PriorityPolicy,
    SubsetPolicy,
    build_policy,
)
from hardmine.sampling.sumtree import SumTree
from hardmine.state import Array, Choice, Int, check_fields, check_state, compare_config, to_saved

_log = logging.getLogger("hardmine")
_PENDING_BATCHES = 256  # yielded batches whose importance weights stay available (covers DataLoader prefetching)
_SUBSET_STREAM = 2**32 - 1  # the random stream of an epoch's subset, apart from the per-batch streams
_CANDIDATE_STREAM = 1  # the Philox counter word of candidate batches (priority draws use 0)
_STATE_VERSION = 2  # 2: the consumed position, the epoch's start and the drawn-but-unconsumed batches
_PRIORITY_CHUNK = 16  # the default chunk of priority draws: priorities at most this many batches stale
_SHUFFLED_CHUNK = 64  # the default for the other policies, whose draws within an epoch do not read the memory


class HardExampleSampler:
    """Yields int64 index batches chosen by a policy over a ScoreMemory; pass as `DataLoader(batch_sampler=...)`.

    memory: the ScoreMemory of the data set (N samples); `update` writes to it.
    batch_size: B, samples per batch on this process (the global batch is B x world size).
    num_batches: batches per epoch; by default one pass over the epoch's samples (N, or the subset a policy
        chose): ceil(samples / global batch), floor with drop_last.
    policy: a registered name ("uniform", "importance", "prune_easy", ...) or a Policy object.
    seed: every draw is a function of (seed, epoch, batch number) and the memory, on every rank alike.
    drop_last: without it the last batch of an epoch holds the remaining samples.
    chunk: batches drawn in one vectorised call, and consumed batches whose updates are written to the memory and
        the priorities at once (hardmine.sampling.chunking). Priorities are at most a chunk stale; the memory
        itself always reads as if every update had been written when it was made. 1 draws batch by batch.
        None: 16 for a priority policy, 64 for the others (a shuffled pass, batch or candidate selection draws
        nothing from the memory within an epoch, so a larger chunk changes no batch and costs less per step).

    An epoch is `len(sampler)` batches; a batch is an int64 numpy array [B], which DataLoader, `datasets`
    (`__getitems__`) and accelerate's BatchSamplerShard (as `hardmine.integrations.transformers` sets it)
    take. A batch counts as consumed when `update` or `weights` is called with it: `iter()` continues the
    current epoch with the first batch not consumed, so DataLoader may call it more than once, and batches
    drawn ahead (DataLoader workers, Lightning, accelerate) but not consumed are served again, as they were
    drawn, by the next iterator, also after `load_state_dict`. Once an epoch is consumed (or an
    iterator drew its last batch), the next iterator starts the next epoch (or the one given to `set_epoch`;
    `set_epoch` of the current epoch makes it continue that epoch, yielding nothing when it is consumed).
    Rank and world size are read when an epoch starts, so a sampler may be built before
    `torch.distributed.init_process_group`. At each epoch's first draw the ranks agree on their configuration
    (N, batch size, seed, policy and guards, state version, epoch, consumed batches, memory updates): a difference
    raises the same `DisagreementError` (a ValueError) on every rank, naming the field and each rank's value.
    """

    def __init__(self, memory: ScoreMemory, batch_size: int, num_batches: int | None = None,
                 policy: str | Policy = "importance", seed: int = 0, drop_last: bool = False,
                 chunk: int | None = None) -> None:
        if not isinstance(memory, ScoreMemory):
            hint = ("; a trainer rebuilt this batch sampler around its own sampler (Lightning does under DDP): use "
                    "hardmine.integrations.lightning.HardMiningCallback.dataloader, or "
                    "Trainer(use_distributed_sampler=False)") if isinstance(memory, torch.utils.data.Sampler) else ""
            raise TypeError(f"memory must be a ScoreMemory, got {type(memory).__name__}{hint}")
        self.memory = memory
        self.batch_size = check_int("batch_size", batch_size)
        self.policy = build_policy(policy)
        self._batch_policy = isinstance(self.policy, BatchPolicy)
        self.seed = _check_seed("seed", seed)
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        self.drop_last = drop_last
        self.fixed_batches = None if num_batches is None else check_int("num_batches", num_batches)
        default = _PRIORITY_CHUNK if isinstance(self.policy, PriorityPolicy) else _SHUFFLED_CHUNK
        self.chunk = default if chunk is None else check_int("chunk", chunk)
        self.policy.attach(memory)  # after every check: a policy writes its fixed columns here
        self.rank, self.world_size = rank_and_world()
        self._epoch = 0
        self._started = False  # whether the current epoch's start (policy, subset, length) happened
        self._drawn_to_end = False  # whether an iterator of this process drew the current epoch's last batch
        self._hold = False  # set_epoch named the current epoch: the next iterator continues it, even if it ended
        self._planned: tuple[int, int, int] | None = None  # (memory updates, rank, world) when len() started it
        self._agreed: int | None = None  # the epoch whose configuration the ranks agreed on (agree_on_config)
        self._consumption = Consumption()
        self._warned_no_group = False
        self._epoch_state = self._fresh_epoch_state()
        self._tree: SumTree | None = None
        self._permutation: np.ndarray | None = None
        self._pending: OrderedDict[bytes, tuple[np.ndarray, torch.Tensor]] = OrderedDict()
        self._chunk: Chunk | None = None  # this rank's shares of the batches drawn ahead (recorded in Consumption)
        self._counted = 0  # batches of the epoch (drawn) whose classes are counted in _drawn_per_class
        self._consumed_by: Any = None  # the object of the batch `update` or `weights` consumed last
        self._buffer = UpdateBuffer()
        self._device = torch.device("cpu")  # of the latest losses: where `weights` puts its tensors
        self._drawn_per_class = np.zeros(max(memory.num_classes, 1), dtype=np.int64)
        self._mining_seconds = 0.0
        self._last_weights: torch.Tensor | None = None
        self._last_update: tuple[torch.Tensor, HostValues | np.ndarray] | None = None
        self._last_indices: tuple[Any, tuple[np.ndarray, torch.Tensor] | None] | None = None

    def _fresh_epoch_state(self) -> dict[str, Any]:
        """What an epoch's start decides: the mode, the subset and its weights, the samples forced first."""
        return {"mode": "subset", "subset": None, "subset_weights": None,
                "forced": np.zeros(0, dtype=np.int64), "num_batches": self._count_batches(self.memory.num_samples)}

    def _count_batches(self, samples: int) -> int:
        if self.fixed_batches is not None:
            return self.fixed_batches
        global_batch = self.batch_size * self.world_size
        if self.drop_last and samples < global_batch:
            raise ValueError(f"drop_last=True but the {samples} samples of an epoch do not fill one batch of "
                             f"batch_size {self.batch_size} x world size {self.world_size}: every batch would hold "
                             "repeats; lower batch_size or set drop_last=False")
        return samples // global_batch if self.drop_last else -(-samples // global_batch)

    @property
    def num_batches(self) -> int:
        """Batches the current epoch yields (`len(sampler)`). Asked before the epoch starts (after `set_epoch`, as
        DataLoader, tqdm, Lightning and the HF Trainer ask), it starts the epoch as the first iterator would: a
        subset policy (prune_easy, self_paced, ...) decides its subset from the memory as it is now, so the
        length is the one the epoch yields. If the memory or the world size changes before the first iterator,
        that iterator decides the epoch again (and may yield another number of batches).

        A score-dependent policy's later epochs cannot be known in advance: their lengths are known when each
        starts, so a run's total of steps (Lightning's `estimated_stepping_batches`, the HF Trainer's
        `max_steps`) assumes every epoch has the length of the first; the integrations (HardMiningCallback,
        HardMiningTrainer) then drive the step-based LR schedules by the fraction of the run done, so they end
        with it; elsewhere, bound such a run by steps (`max_steps`) for a schedule that must end exactly."""
        if not self._started:
            self._begin_epoch(early=True)
        return self._epoch_state["num_batches"]

    def batches_for(self, samples: int) -> int:
        """Batches of an epoch over `samples` samples at the current world size (`num_batches` if it was fixed)."""
        samples = check_int("samples", samples)
        return self._count_batches(samples)

    def __len__(self) -> int:
        """`num_batches`."""
        return self.num_batches

    @property
    def statistics_needed(self) -> tuple[str, ...]:
        """The `update()` statistics its policy and guards read (sorted); pass them to
        `hardmine.scores.statistics(logits, targets, names=sampler.statistics_needed)`. Often empty: then
        nothing is computed."""
        return tuple(sorted(self.policy.statistics_read()))

    @property
    def position(self) -> int:
        """Batches of the current epoch consumed so far (by `update` or `weights`)."""
        return self._consumption.consumed

    def _sync_world(self) -> None:
        """Read rank and world size (an epoch start); log a change once, warn under DDP without a group."""
        rank, world = rank_and_world()
        if (rank, world) != (self.rank, self.world_size):
            _log.info("HardExampleSampler: rank %d of world size %d (was rank %d of %d)", rank, world,
                      self.rank, self.world_size)
            self.rank, self.world_size = rank, world
        env_world = os.environ.get("WORLD_SIZE", "1")
        if world == 1 and env_world.isdigit() and int(env_world) > 1 and not self._warned_no_group:
            self._warned_no_group = True
            warnings.warn(f"WORLD_SIZE={env_world} in the environment but torch.distributed has no process group: "
                          "this process draws the batches of a single process (every rank the same ones); call "
                          "torch.distributed.init_process_group before iterating the sampler", stacklevel=3)

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iterator draw epoch `epoch`: from its start, unless it is the current epoch; then the next
        iterator continues it (its batches not consumed yet; none once it is consumed), so a loop resumed with
        `for epoch in range(saved_epoch, E): sampler.set_epoch(epoch)` from a checkpoint taken on an epoch's last
        batch goes on with the next epoch, not one more."""
        epoch = _check_epoch("epoch", epoch)
        if epoch != self._epoch:
            self._new_epoch(epoch)
        else:
            self._hold = True

    def _new_epoch(self, epoch: int) -> None:
        self._epoch, self._started, self._drawn_to_end, self._chunk = epoch, False, False, None
        self._hold = False
        self._planned = self._agreed = None
        self._consumption.reset()
        self._consumed_by = None

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._epoch_batches()

    def _epoch_batches(self) -> Iterator[np.ndarray]:
        hold, self._hold = self._hold, False
        if self._started and not hold and (self._drawn_to_end or
                                           self._consumption.consumed >= self._epoch_state["num_batches"]):
            self._new_epoch(self._epoch + 1)
        if self._planned is not None and self._planned != (self.memory.updates, *rank_and_world()):
            self._started = False  # len() decided the epoch; the memory or the world changed since: decide again
        self._planned = None
        if not self._started:
            self._begin_epoch()
        if self._agreed != self._epoch:
            if self.world_size > 1:
                agree_on_config("HardExampleSampler", self._configuration())  # before any data collective
            self._agreed = self._epoch
        k = self._consumption.consumed
        while k < self._epoch_state["num_batches"]:
            chunk = self._chunk
            if chunk is None or not chunk.first <= k < chunk.end:
                started = time.perf_counter()
                chunk = self._next_chunk(k)
                self._mining_seconds += time.perf_counter() - started
            self._last_indices = None
            yield chunk.served[k - chunk.first]
            k += 1
        self._drawn_to_end = True

    def _configuration(self) -> dict[str, Any]:
        """What every rank must have alike at an epoch's first draw (`agree_on_config` compares digests)."""
        policy = self.policy.state_dict()
        return {"num_samples": self.memory.num_samples, "batch_size": self.batch_size,
                "num_batches": self.fixed_batches, "drop_last": self.drop_last, "chunk": self.chunk,
                "seed": self.seed, "epoch": self._epoch, "policy": policy["name"], "policy config": policy["config"],
                "guards": [(guard["name"], guard["config"]) for guard in policy["guards"]],
                "state_version": (_STATE_VERSION, policy["state_version"]),
                "consumed batches": self._consumption.consumed, "memory updates": self.memory.updates}

    def _begin_epoch(self, early: bool = False) -> None:
        """Start the current epoch (`early`: for `len()`, before an iterator draws from it)."""
        started = time.perf_counter()
        self._sync_world()
        self._start_epoch()
        self._started = True
        self._planned = (self.memory.updates, self.rank, self.world_size) if early else None
        self._mining_seconds += time.perf_counter() - started

    def _start_epoch(self) -> None:
        self.flush(wait=True)
        policy, memory = self.policy, self.memory
        policy.start_epoch(self._epoch, memory)
        state = self._fresh_epoch_state()
        if isinstance(policy, PriorityPolicy) and not policy.in_warmup(self._epoch):
            state["mode"] = "priority"
            forced = policy.forced()
            if forced.size:
                rng = np.random.default_rng([self.seed, self._epoch, _SUBSET_STREAM])
                state["forced"] = rng.permutation(forced)
        elif isinstance(policy, SubsetPolicy) and not policy.in_warmup(self._epoch):
            rng = np.random.default_rng([self.seed, self._epoch, _SUBSET_STREAM])
            subset, weights = policy.guarded_subset(memory, rng)
            state.update(subset=subset, subset_weights=weights,
                         num_batches=self._count_batches(memory.num_samples if subset is None else subset.size))
        elif isinstance(policy, CandidatePolicy) and not policy.in_warmup(self._epoch):
            state.update(mode="candidates", num_batches=self._count_batches(policy.epoch_samples(memory.num_samples)))
        self._epoch_state = state
        self._tree = self._permutation = self._chunk = None
        self._drawn_per_class[:] = 0
        self._counted = 0

    def _global_batch_size(self, k: int, samples: int, num_batches: int | None = None) -> int:
        full = self.batch_size * self.world_size
        size = full
        last = (self.num_batches if num_batches is None else num_batches) - 1
        if self.fixed_batches is None and not self.drop_last and k == last and samples % full:
            size = samples - k * full
        return -(-size // self.world_size) * self.world_size  # every rank gets the same, non-empty share

    def _drawn_size(self, k: int, epoch_state: dict[str, Any], use_saved_config: bool) -> int | None:
        """The global size of batch k of an epoch decided as `epoch_state` (None: not known before a saved policy
        configuration is taken)."""
        n, batches = self.memory.num_samples, epoch_state["num_batches"]
        if epoch_state["mode"] == "candidates":
            return None if use_saved_config else self._candidate_size(k, batches)
        subset = epoch_state["subset"]
        return self._global_batch_size(k, n if subset is None or epoch_state["mode"] != "subset" else subset.size,
                                       batches)

    def _next_chunk(self, k: int) -> Chunk:
        """The chunk that serves batch k: the batches drawn before from k on and not consumed (after a resume, or
        an iterator given up), else `chunk` batches drawn now; its batches are recorded as drawn (`Consumption`
        holds every drawn-but-unconsumed batch, the chunk's shares on this rank are views of them) and known to
        `weights` and `update`."""
        stored = self._consumption.stored(k)
        if stored is None:
            chunk = self._draw_chunk(k)
        else:
            indices, weights, j = [], [], k
            while stored is not None:
                indices.append(stored[0])
                weights.append(stored[1])
                j += 1
                stored = self._consumption.stored(j)
            chunk = Chunk(k, indices, weights)
        self._adopt(chunk)
        for j, (indices, weights, batch, key) in enumerate(zip(chunk.indices, chunk.weights, chunk.batches,
                                                                chunk.keys)):
            self._consumption.record(k + j, indices, weights, batch, key)
        labels = self.memory.labels
        if chunk.end > self._counted:  # the classes of the batches drawn for the first time, in one bincount
            if labels is not None:
                drawn = labels[np.concatenate(chunk.batches[max(self._counted - k, 0):])]
                self._drawn_per_class += np.bincount(drawn, minlength=self._drawn_per_class.size)
            self._counted = chunk.end
        return chunk

    def _adopt(self, chunk: Chunk) -> Chunk:
        """Make `chunk` the current one: this rank's shares cut, known to `weights` and `update`."""
        self._chunk = chunk
        self._slice_chunk(chunk)
        chunk.keys = [batch.tobytes() for batch in chunk.batches]
        for batch, weights, key in zip(chunk.batches, chunk.local_weights, chunk.keys):
            self._remember(batch, weights, key)
        return chunk

    def _draw_chunk(self, k: int) -> Chunk:
        """Batches k, k + 1, ... (at most `chunk`, not past the epoch's end), after writing the buffered updates."""
        self.flush(wait=True)
        state, stride = self._epoch_state, self.batch_size * self.world_size
        ks = range(k, min(k + self.chunk, self.num_batches))
        if state["mode"] == "priority":
            if self._tree is None:
                self._tree = SumTree(self.policy.priorities(self.memory))
            sizes = [self._global_batch_size(j, self.memory.num_samples) for j in ks]
            return draw_by_priority(self._tree, self.policy, self.memory.num_samples, self.seed, self._epoch, k,
                                    sizes, stride, state["forced"], self.memory.labels)
        if state["mode"] == "candidates":  # each batch from its own stream, independent of the memory
            drawn = [self._draw_candidates(j) for j in ks]
            return Chunk(k, [d[0] for d in drawn], [d[1] for d in drawn])
        subset = state["subset"]
        samples = self.memory.num_samples if subset is None else subset.size
        if self._permutation is None:
            self._permutation = np.random.default_rng([self.seed, self._epoch]).permutation(samples)
        sizes = [self._global_batch_size(j, samples) for j in ks]
        return draw_from_subset(self._permutation, subset, state["subset_weights"], self.policy, k, sizes, stride)

    def _slice_chunk(self, chunk: Chunk) -> None:
        """This rank's share of every batch of the chunk, with its weights as float32 tensors [B] on the device
        of the latest losses (one copy for the whole chunk)."""
        if self.world_size == 1:
            batches = [np.ascontiguousarray(b, dtype=np.int64) for b in chunk.indices]
            flat = np.concatenate(chunk.weights)
        else:
            mine = [slice(self.rank * (b.size // self.world_size), (self.rank + 1) * (b.size // self.world_size))
                    for b in chunk.indices]
            batches = [np.ascontiguousarray(b[m], dtype=np.int64) for b, m in zip(chunk.indices, mine)]
            flat = np.concatenate([w[m] for w, m in zip(chunk.weights, mine)])
        sizes = [b.size for b in batches]
        both = _with_means(flat, sizes)
        if self._device.type != "cpu":
            both = both.pin_memory().to(self._device, non_blocking=True)
        chunk.batches, chunk.local_weights = batches, list(both[0].split(sizes))
        # what the loop gets: copies (views of one), so that a batch changed in place changes nothing here
        chunk.served = np.split(np.concatenate(batches), np.cumsum(sizes[:-1]))
        for weights, over_size in zip(chunk.local_weights, both[1].split(sizes)):
            mark_valid(weights, over_size)  # finite and non-negative by construction: hm.reduce does not look

    # Candidate batches (CandidatePolicy): each step, candidates x the batch, drawn uniformly without replacement
    # within the batch from a stream of its own, a pure function of (seed, epoch, step); `update` selects.
    def _candidate_size(self, k: int, num_batches: int | None = None) -> int:
        """Indices in candidate batch k: candidates x the batch (at most N), a multiple of the world size."""
        n = self.memory.num_samples
        size = min(n, self._global_batch_size(k, self.policy.epoch_samples(n), num_batches) * self.policy.candidates)
        return size - size % self.world_size

    def _draw_candidates(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        n, size = self.memory.num_samples, self._candidate_size(k)
        rng = np.random.Generator(np.random.Philox(key=self.seed, counter=[0, _CANDIDATE_STREAM, k, self._epoch]))
        return rng.choice(n, size, replace=False).astype(np.int64), np.full(size, np.nan)  # update() decides

    def _check_candidates(self, idx: np.ndarray) -> None:
        if self._epoch_state["mode"] == "candidates" and idx.tobytes() not in self._pending:
            raise ValueError(f"indices (first: {idx[:5].tolist()}, {idx.size} in all) are not a candidate batch this "
                             f"sampler yielded: pass update() the whole candidate batch ({self.policy.candidates} x "
                             "batch_size indices, in the order yielded) with the losses of all of them")

    def _remember(self, batch: np.ndarray, weights: torch.Tensor, key: bytes | None = None) -> None:
        self._pending[batch.tobytes() if key is None else key] = (batch, weights)
        while len(self._pending) > _PENDING_BATCHES:
            self._pending.popitem(last=False)

    def weights(self, indices: Any) -> torch.Tensor:
        """Importance weights [B] (float32) of the samples `indices` [B] of a batch this sampler yielded.

        They are those of the probabilities the batch was drawn with (ones for plain shuffling), so calling this
        before or after `update` gives the same, except for batch policies (selective backprop), whose weights
        `update` decides. `indices` may be the whole batch or any subset of it. The tensor is on the device of
        the losses last given to `update` (copied there a chunk at a time, without waiting); it may be shared
        with later calls, so do not change it in place.
        """
        last = self._last_indices
        found = last[1] if last is not None and last[0] is indices else self._pending.get(_key(indices))
        if found is not None:
            consumed, weights = found[0], found[1]
            chunk = self._chunk
            if weights.device != self._device and chunk is not None and any(w is weights for w in
                                                                            chunk.local_weights):
                position = [w is weights for w in chunk.local_weights].index(True)
                weights = self._adopt(chunk).local_weights[position]
        else:
            consumed = check_indices("indices", indices, self.memory.num_samples)
            weights = self._lookup_subset(consumed)
        if self._epoch_state["mode"] == "candidates" and bool(torch.isnan(weights).any()):
            raise ValueError("weights of a candidate batch are decided by update(): call sampler.update(indices, "
                             "losses of all candidates) first")  # before the batch counts as consumed
        self._consume(indices, consumed)
        if weights.device != self._device:
            valid = marked_valid(weights)  # a policy's own selected weights may not be
            weights = weights.to(self._device, non_blocking=True)
            if valid:
                mark_valid(weights)
        self._last_weights = weights
        return weights

    def selection(self, indices: Any) -> torch.Tensor:
        """Boolean [B]: which samples `indices` [B] an in-batch loss (OHEM, focal) may use, after the guards'
        per-batch selection (a noise guard leaves out its suspects); all True without such a guard.

        Use it in the loop as `loss_fn(logits[keep], targets[keep])` with `keep = sampler.selection(idx)`.
        """
        idx = check_indices("indices", indices, self.memory.num_samples)
        return torch.from_numpy(np.ascontiguousarray(self.policy.selection(np.ones(idx.size, dtype=bool), idx)))

    def _lookup_subset(self, idx: np.ndarray) -> torch.Tensor:
        """The weights (float32 [b]) of `idx`, part of a batch yielded lately; marked valid when the batch's are."""
        for batch, weights in reversed(self._pending.values()):
            order = np.argsort(batch, kind="stable")
            pos = np.minimum(np.searchsorted(batch[order], idx), batch.size - 1)
            if np.array_equal(batch[order][pos], idx):
                part = torch.from_numpy(weights.cpu().numpy()[order][pos].astype(np.float32))
                return mark_valid(part) if marked_valid(weights) else part
        raise ValueError(f"indices (first: {idx[:5].tolist()}) are not part of any of the last {_PENDING_BATCHES} "
                         "batches this sampler yielded; pass the indices of a yielded batch")

    def update(self, indices: Any, per_sample_loss: Any, **stats: Any) -> None:
        """Record what the model found hard: the loss (or any score, higher = harder) [B] of `indices` [B].

        per_sample_loss: [B] on any device; on an accelerator it is copied to the host without waiting for it.
        stats: optional per-sample statistics for the memory (`**hardmine.scores.statistics(logits, targets)`).
        Checked here as `ScoreMemory.check_update` and the policy's `check_scores` check them (one process,
        scores on the host, no statistics: one min and one max decide, the full check only names what is bad) and
        buffered; the buffered batches are written to the memory and re-prioritised (O(B log N) each) at once
        every `chunk` batches, and before any read of the memory. Values on an accelerator are checked when they
        arrive, before anything is written. Under torch.distributed every rank runs its checks first and all raise
        or none does (`agree_on_errors`, whose one all-reduce also compares the statistics' names: given on one
        rank only, the same DisagreementError on every rank); then the indices (int64) and values (float) of
        every rank are gathered separately, so every rank's memory and priorities stay identical. Bad input raises
        before anything changes. The batch counts as consumed.
        """
        key = _key(indices)
        found = self._pending.get(key)
        if not stats and self.world_size == 1 and not self._buffer.entries:
            host = _host_array(per_sample_loss)
            if host is not None:  # the common case: one process, values on the host
                self._update_on_host(indices, found, host, key)
                return
        if self._buffer.sizes:
            self.flush(wait=True)  # a buffer holds one kind of update at a time
        batch_policy = self._batch_policy and not self.policy.in_warmup(self._epoch)
        with agree_on_errors("HardExampleSampler.update") as alike:  # every rank raises, or none does
            # the sampler's own array, or a copy: the caller may change theirs before the buffered write
            local = found[0] if found is not None else \
                check_indices("indices", indices, self.memory.num_samples).copy()
            self._check_candidates(local)
            values = {"scores": HostValues("per_sample_loss", per_sample_loss, local)}
            if stats:
                self.memory.check_statistics(stats)
                values.update((name, HostValues(name, v, local)) for name, v in sorted(stats.items())
                              if v is not None)  # sorted: every rank gathers them in one order
            alike["statistics"] = sorted(set(values) - {"scores"})  # every rank gathers the same ones
            now = self.world_size > 1 or batch_policy or all(v.ready for v in values.values())
            if now:  # needs the values now (gathered, or selected from), or has them
                host = {name: v.array() for name, v in values.items()}
                self._check(local, host)
        self._device = values["scores"].device
        own = values["scores"]  # this rank's values (stats' loss_variance pairs them with this rank's weights)
        if now:
            idx = local
            if self.world_size > 1:
                idx = all_gather_1d(torch.from_numpy(local)).numpy()
                host = {name: all_gather_1d(torch.from_numpy(v)).numpy() for name, v in host.items()}
            if batch_policy:
                offset = rank_offset(local.size)
                selected = self.policy.guarded_select(host["scores"], idx)[offset: offset + local.size]
                self._remember(local, self._selected_weights(selected))
            values = {name: HostValues(name, v, idx) for name, v in host.items()}
            pending = Pending(idx, values, checked=True)
        else:
            pending = Pending(local, values)
        self._consume(indices, local)
        if self._buffer.entries and self._buffer.entries[-1].values.keys() != pending.values.keys():
            self.flush(wait=True)  # a buffered write holds batches with the same statistics
        self._buffer.entries.append(pending)
        self.memory.buffering(self, self.flush)
        if batch_policy:
            found = self._pending.get(local.tobytes())
        self._last_update = None if found is None else (found[1], own)
        self._last_indices = (indices, self._pending.get(local.tobytes()))
        if len(self._buffer) >= self.chunk:
            self.flush(wait=False)

    def _update_on_host(self, indices: Any, found: tuple[np.ndarray, torch.Tensor] | None,
                        host: np.ndarray | torch.Tensor, key: bytes | None) -> None:
        """`update` of one process with the scores [B] on the host (a numpy array, or a detached CPU tensor of a
        floating dtype) and no statistics: checked by one min and one max (`ScoreMemory.value_range`) and the
        policy's `check_scores`, then copied into the buffer; a batch policy then selects from them."""
        # the sampler's own array, or a copy: the buffer keeps it until the chunk's write
        local = found[0] if found is not None else check_indices("indices", indices, self.memory.num_samples).copy()
        selecting = self._batch_policy and not self.policy.in_warmup(self._epoch)
        if selecting:
            self._check_candidates(local)
        if isinstance(host, np.ndarray) and host.dtype.kind not in "fiub":
            raise TypeError(f"per_sample_loss must be a real-valued array, got dtype {host.dtype}")
        if host.ndim != 1:
            raise ValueError(f"per_sample_loss must be 1-D [B], got shape {tuple(host.shape)}")
        if host.shape[0] != local.size:
            raise ValueError(f"per_sample_loss has shape {tuple(host.shape)} but the indices have length "
                             f"{local.size}")
        staged = self._buffer.stage(host, *self.memory.value_range("scores"))
        if staged is None:  # raises, naming the values, for NaN, inf or what does not fit a column
            host = to_numpy(host.double() if isinstance(host, torch.Tensor) else host)
            _, checked, _ = self.memory.check_update(local, host, score_name="per_sample_loss")
            self.policy.check_scores("per_sample_loss", local, checked["scores"], self.memory)
            scores = checked["scores"]
            selected = self._selected_weights(self.policy.guarded_select(scores, local)) if selecting else None
            self.flush(wait=True)  # fits every column but not one range (an integer column): written as an entry
            values = {"scores": HostValues("per_sample_loss", scores, local)}
            self._buffer.entries.append(Pending(local, values, checked=True))
        else:
            scores, smallest, largest = staged
            if scores.size:
                self.policy.check_batch_scores("per_sample_loss", local, scores, self.memory, (smallest, largest))
            # a batch policy's weights, decided by the scores, before anything is kept (select may raise)
            selected = self._selected_weights(self.policy.guarded_select(scores, local)) if selecting else None
            self._buffer.commit(local)
        if selected is not None:
            found = (local, selected)
            self._remember(local, selected, key)
        self._consume(indices, local, key if found is not None else None)
        self._device = _CPU
        self._last_update = None if found is None else (found[1], host)
        self._last_indices = (indices, found)  # `weights(indices)` right after finds the batch at once
        if len(self._buffer) == 1:
            self.memory.buffering(self, self.flush)
        if len(self._buffer) >= self.chunk:
            self.flush()

    def _selected_weights(self, selected: np.ndarray) -> torch.Tensor:
        """A batch policy's weights [B] as float32; marked valid for `hm.reduce` (with their mean's w / B) when
        the policy makes them finite and non-negative and no guard adjusts them, else `hm.reduce` checks them."""
        policy = self.policy
        if not policy.valid_weights or policy.guards_implement("adjust_weights"):
            return torch.from_numpy(selected.astype(np.float32))
        both = _with_means(selected, [selected.size])
        return mark_valid(both[0], both[1])

    def _consume(self, indices: Any, local: np.ndarray, key: bytes | None = None) -> None:
        """Count the batch `local` [B] (passed as the object `indices`) as consumed, once for the `weights` and
        `update` calls of a step with the same object."""
        if indices is not self._consumed_by:
            self._consumed_by = indices
            self._consumption.consume(local, key)

    def _check(self, indices: np.ndarray, host: dict[str, np.ndarray]) -> None:
        """The memory's and the policy's checks of one batch's values [B] (by source name) on the host."""
        stats = {name: v for name, v in host.items() if name != "scores"}
        _, checked, _ = self.memory.check_update(indices, host["scores"], score_name="per_sample_loss", **stats)
        self.policy.check_scores("per_sample_loss", indices, checked["scores"], self.memory)

    def flush(self, wait: bool = True) -> None:
        """Write the buffered updates to the memory and the priorities now (the sampler does it every `chunk`
        batches, before drawing, and before any read of the memory).

        wait: False writes only the updates whose values have already arrived from an accelerator.
        Raises ValueError, naming the argument, if values that arrived late do not pass `update`'s checks; that
        batch's update is dropped and nothing is written.
        """
        if self._buffer.sizes:
            self.memory.written(self)
            started = time.perf_counter()
            idx, values, batch, count = self._buffer.take_arrays()
            self._write(idx, values, batch, count)
            self._mining_seconds += time.perf_counter() - started
            return
        entries = self._buffer.take(wait)
        if not self._buffer.entries:
            self.memory.written(self)
        if not entries:
            return
        for position, entry in enumerate(entries):
            try:
                host = {name: v.array() for name, v in entry.values.items()}
                if not entry.checked:
                    self._check(entry.indices, host)
                    entry.checked = True
            except (TypeError, ValueError):
                self._buffer.entries = entries[:position] + entries[position + 1:] + self._buffer.entries
                if self._buffer.entries:
                    self.memory.buffering(self, self.flush)
                raise
        started = time.perf_counter()
        idx, values, batch = concatenate(entries)
        self._write(idx, values, batch, len(entries))
        self._mining_seconds += time.perf_counter() - started

    def _write(self, idx: np.ndarray, values: dict[str, np.ndarray], batch: np.ndarray | None, count: int) -> None:
        """`count` consumed batches into the memory (as one update each) and their new priorities into the tree."""
        distinct = self.memory.write(idx, values, batch=batch, num_batches=count)
        if self._tree is not None:
            self._tree.update(distinct, self.policy.priorities(self.memory, distinct))

    def stats(self) -> dict[str, float]:
        """Numbers for logging (O(N): call once an epoch or every few hundred steps).

        Under torch.distributed it runs no collective (one rank may call it alone, as rank-zero logging does) and
        its numbers are this rank's, like Lightning's `self.log` without `sync_dist`: those of the memory (scores,
        ages, seen) are every rank's alike, since every rank writes every update; the per-batch ones (weights,
        loss_variance, class_share) are of this rank's share of the batches.

        epoch, batch, num_batches; fraction_seen; score_mean/max; keep_ratio (policies that keep a part);
        weight_mean/min/max of the last weights asked for; loss_variance: variance of the weighted per-sample
        losses of the last updated batch (a gradient-variance proxy: instability shows here first);
        age_median/age_p90/age_max: steps since each seen sample was last scored; stale_fraction: seen samples
        not scored for more than an epoch of steps; noise_suspects; class_share/<c> and data_share/<c>: each
        class's share of the samples drawn this epoch and of the data set; mining_seconds: time spent in the
        sampler's chunk-level work (drawing chunks, writing buffered updates, epoch starts); the per-call checks
        and lookups of `update` and `weights` are not timed (timing them would cost about as much as they do).
        """
        memory = self.memory
        length = self._epoch_state["num_batches"] if self._started else self.batches_for(memory.num_samples)
        seen = memory.get("seen") > 0
        scores = memory.get("score")[seen]
        out = {"epoch": float(self._epoch), "batch": float(self._consumption.consumed),
               "num_batches": float(length), "fraction_seen": float(seen.mean()),
               "score_mean": float(scores.mean()) if scores.size else float("nan"),
               "score_max": float(scores.max()) if scores.size else float("nan")}
        out.update(self.policy.stats())
        if self._last_weights is not None:
            w = self._last_weights.cpu().numpy()
            out.update(weight_mean=float(w.mean()), weight_min=float(w.min()), weight_max=float(w.max()))
        if self._last_update is not None:
            weights, losses = self._last_update
            if isinstance(losses, HostValues):
                losses = losses.array()
            elif isinstance(losses, torch.Tensor):
                losses = losses.double().numpy()
            out["loss_variance"] = float(np.var(weights.cpu().numpy() * losses))
        if scores.size:
            age = memory.updates - 1 - memory.get("last_step")[seen]
            out.update(age_median=float(np.median(age)), age_p90=float(np.quantile(age, 0.9)),
                       age_max=float(age.max()), stale_fraction=float((age > length).mean()))
        out.update(self.policy.guard_stats())
        drawn = self._drawn_per_class
        if memory.labels is not None and drawn.sum():
            data = np.bincount(memory.labels, minlength=drawn.size) / memory.num_samples
            drawn = drawn / drawn.sum()
            for c in range(drawn.size):
                out[f"class_share/{c}"], out[f"data_share/{c}"] = float(drawn[c]), float(data[c])
        out["mining_seconds"] = self._mining_seconds
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the exact sequence of batches (the memory has its own state_dict).

        Of the batches drawn but not consumed it holds the first `DRAWN_SAVED` (256, as many as DataLoader
        prefetching could need): a loop that drew more ahead of the last batch it consumed resumes serving those,
        then draws the rest anew (the same batches for shuffled passes and candidate batches; a priority policy
        draws them from the priorities of that moment)."""
        return {"seed": self.seed, "epoch": self._epoch, "position": self._consumption.consumed,
                "num_samples": self.memory.num_samples,
                "started": self._started, "drawn": self._consumption.state_dict(),
                "batch_size": self.batch_size, "fixed_batches": self.fixed_batches, "world_size": self.world_size,
                "epoch_state": to_saved(self._epoch_state), "policy": self.policy.state_dict(),
                "state_version": _STATE_VERSION}

    def load_state_dict(self, state: dict[str, Any], *, use_saved_config: bool = False) -> None:
        """Restore `state_dict()`: the next iterator serves the batches drawn but not consumed, as they were drawn,
        then draws on. Rank and world size are read first: the saved world size must be this one.

        Everything (the policy's and its guards' states included) is checked against the declared schemas
        first, then assigned in one step. A saved seed or policy argument that differs from this sampler's is an
        error naming both values, unless `use_saved_config=True` asks to take the saved ones (batch_size,
        num_batches and the world size must always match).
        """
        self._sync_world()
        values, drawn = self._parse_state(state, use_saved_config)
        self.flush(wait=True)  # the updates of consumed batches belong to the state being replaced
        # through the policy's own load_state_dict (a subclass may extend it); it cannot fail once parsed
        self.policy.load_state_dict(state["policy"], num_samples=self.memory.num_samples,
                                    use_saved_config=use_saved_config)
        self.seed, self._epoch, self._epoch_state, self._started = values
        self._consumption.load(drawn)
        self._consumed_by = None
        self._drawn_to_end = self._hold = False
        self._planned = self._agreed = None
        self._tree = self._permutation = self._chunk = self._last_indices = None
        self._counted = max([drawn["consumed"], *(p + 1 for p in drawn["records"])])  # as counted before
        self._pending.clear()

    def _parse_state(self, state: dict[str, Any], use_saved_config: bool) -> tuple[tuple, dict[str, Any]]:
        """(seed, epoch, epoch state, started) and the drawn batches, checked with the policy's state; nothing
        changes."""
        keys = ("seed", "epoch", "position", "started", "drawn", "batch_size", "fixed_batches", "world_size",
                "epoch_state", "policy")
        check_state(state, "HardExampleSampler", _STATE_VERSION, keys)
        for key in ("batch_size", "fixed_batches", "world_size"):
            if state[key] is not None and (isinstance(state[key], bool) or not isinstance(state[key], int)):
                raise TypeError(f"state[{key!r}] must be an int, got {state[key]!r}")
            if state.get(key) != getattr(self, key):
                raise ValueError(f"state[{key!r}] is {state.get(key)!r} but this sampler has {getattr(self, key)!r}")
        seed = _check_seed("state['seed']", state["seed"])
        compare_config("HardExampleSampler", {"seed": seed}, {"seed": self.seed}, use_saved_config)
        epoch = _check_epoch("state['epoch']", state["epoch"])
        position = check_int("state['position']", state["position"], minimum=0)
        n = self.memory.num_samples
        if "num_samples" in state and (isinstance(state["num_samples"], bool) or state["num_samples"] != n):
            raise ValueError(f"state['num_samples'] is {state['num_samples']!r} but this sampler's memory holds {n} "
                             "samples: the state belongs to another data set")
        epoch_state = check_fields(state["epoch_state"], _EPOCH_STATE, "state['epoch_state']", {"N": n})
        subset, weights = epoch_state["subset"], epoch_state["subset_weights"]
        if (subset is None) != (weights is None) or (subset is not None and subset.shape != weights.shape):
            shapes = [None if a is None else a.shape for a in (subset, weights)]
            raise ValueError(f"state['epoch_state'] must hold a subset and its weights of the same length, got "
                             f"{shapes[0]} and {shapes[1]}")
        if position > epoch_state["num_batches"]:
            raise ValueError(f"state['position'] is {position}, past the {epoch_state['num_batches']} batches")
        if not isinstance(state["started"], bool):
            raise TypeError(f"state['started'] must be a bool, got {state['started']!r}")
        drawn = Consumption.check_state(state["drawn"], epoch_state["num_batches"], n)
        for k, (indices, _) in drawn["records"].items():
            size = self._drawn_size(k, epoch_state, use_saved_config)
            if size is not None and indices.size != size:
                raise ValueError(f"state['drawn'] holds batch {k} of {indices.size} indices, but a batch there "
                                 f"holds {size} (batch_size {self.batch_size} x world size {self.world_size})")
        if epoch_state["mode"] != "candidates" and any(np.isnan(w).any() for _, w in drawn["records"].values()):
            raise ValueError("state['drawn'] holds NaN weights, which only candidate batches have (before update() "
                             f"decides them), but the epoch's mode is {epoch_state['mode']!r}")
        if drawn["consumed"] != position:
            raise ValueError(f"state['position'] is {position} but state['drawn'] counts {drawn['consumed']}")
        self.policy._parse_state(state["policy"], n, use_saved_config)
        return (seed, epoch, epoch_state, state["started"]), drawn


_EPOCH_STATE = {"mode": Choice("subset", "priority", "candidates"),
                "subset": Array("int64", low=0, below="N", optional=True),
                "subset_weights": Array("float64", low=0.0, optional=True),
                "forced": Array("int64", low=0, below="N"),
                "num_batches": Int(1)}
"""The schema of an epoch's state: what its start decided."""

_SEED_LIMIT = 2**64  # numpy's Philox key and SeedSequence entropy take seeds below it
_EPOCH_LIMIT = 2**63  # an epoch is a 64-bit Philox counter word, and int64 in saved states


def _check_epoch(name: str, epoch: Any) -> int:
    epoch = check_int(name, epoch, minimum=0)
    if epoch >= _EPOCH_LIMIT:
        raise ValueError(f"{name} must be below 2**63, got {epoch}")
    return epoch


def _check_seed(name: str, seed: Any) -> int:
    seed = check_int(name, seed, minimum=0)
    if seed >= _SEED_LIMIT:
        raise ValueError(f"{name} must be below 2**64, got {seed}")
    return seed


_CPU = torch.device("cpu")


def _key(indices: Any) -> bytes | None:
    """The bytes of 1-D int64 indices [B] (CPU tensor or numpy), to find a yielded batch; None for anything else."""
    if type(indices) is torch.Tensor:
        if indices.dtype is not torch.int64 or indices.ndim != 1:
            return None
        try:
            return indices.numpy().tobytes()
        except (RuntimeError, TypeError):  # on an accelerator, or requiring grad
            return None
    if type(indices) is not np.ndarray or indices.dtype != np.int64 or indices.ndim != 1:
        return None
    return indices.tobytes()


def _host_array(values: Any) -> np.ndarray | torch.Tensor | None:
    """`values` without a copy when they are on the host: a numpy array, or a CPU tensor of a floating dtype
    (detached); None otherwise (other tensors take the general path)."""
    if type(values) is np.ndarray:
        return values
    if type(values) is torch.Tensor and values.device.type == "cpu" and values.dtype in _FLOATING and \
            values.layout is torch.strided:
        return values.detach() if values.requires_grad else values
    return None


_FLOATING = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _with_means(weights: np.ndarray, sizes: list[int]) -> torch.Tensor:
    """float32 [2, M]: the weights [M] of consecutive batches of `sizes`, and each over its batch's size (with
    which `hm.reduce`'s mean is one dot product)."""
    return torch.from_numpy(np.stack([weights, weights / np.repeat(sizes, sizes)]).astype(np.float32))


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
