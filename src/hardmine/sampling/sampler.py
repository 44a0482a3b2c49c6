"""HardExampleSampler: a batch sampler for DataLoader that draws the next batch by difficulty.

It wires the parts (docs/architecture.md): the policy's epoch plan draws the batches, the ledger records what was
yielded and consumed, the update pipeline checks and queues the loop's losses on the memory, which writes them.
The sampler itself owns the epochs, the per-rank slicing and the state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from hardmine._checks import check_indices, check_int
from hardmine.distributed import agree_on_config, agree_on_errors, all_gather_1d, rank_offset
from hardmine.sampling.base_source import BaseSource, check_memory
from hardmine.sampling.chunking import Chunk, Yielded, share
from hardmine.sampling.ledger import Ledger, key_of
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.plans import EpochPlan, Shape, ShuffledPass
from hardmine.sampling.policies import Policy, build_policy
from hardmine.sampling.sampler_state import STATE_VERSION, check_epoch, check_seed, configuration, parse_state
from hardmine.sampling.tally import Tally
from hardmine.sampling.updates import UpdatePipeline
from hardmine.sampling.with_index import WithIndex
from hardmine.sampling.world import World
from hardmine.state import Parsed, Stateful
from hardmine.weights import BatchWeights


class HardExampleSampler(Stateful):
    """Yields int64 index batches chosen by a policy over a ScoreMemory; pass as `DataLoader(batch_sampler=...)`.

    memory: the ScoreMemory of the data set (N samples); `update` writes to it.
    batch_size: B, samples per batch on this process (the global batch is B x world size).
    num_batches: batches per epoch; by default one pass over the epoch's samples (N, or the subset a policy
        chose): ceil(samples / global batch), floor with drop_last.
    policy: a registered name ("uniform", "importance", "prune_easy", ...) or a Policy object.
    seed: every draw is a function of (seed, epoch, batch number) and the memory, on every rank alike.
    drop_last: without it the last batch of an epoch holds the remaining samples.
    chunk: batches drawn in one vectorised call, and consumed batches whose updates the memory writes (and the
        priorities take) at once: priorities are at most a chunk stale; the memory reads as if every update had
        been written when it was made. 1 draws batch by batch. None: the policy's `default_chunk` (16 for a
        priority policy, 64 for the others, whose draws within an epoch do not read the memory).
    base_sampler: the user's Sampler of indices (or batch sampler) as the source of each epoch's draws, mining on
        top (docs/sampler.md, hardmine.sampling.base_source); exact resume needs its `generator` seeded.

    An epoch is `len(sampler)` batches; a batch is an int64 numpy array [B] (DataLoader, `datasets` and
    accelerate's BatchSamplerShard take it). A batch counts as consumed when `update` or `weights` is called with
    it: `iter()` continues the current epoch with the first batch not consumed, and batches drawn ahead (by
    DataLoader workers, Lightning, accelerate) but not consumed are served again, as they were drawn, by the next
    iterator, also after `load_state_dict`. Once an epoch is consumed (or an iterator drew its last batch), the
    next iterator starts the next epoch (or the one given to `set_epoch`). Rank and world size are read when an
    epoch starts; at each epoch's first draw the ranks agree on their configuration (a difference raises the same
    `DisagreementError` on every rank, naming the field and each rank's value).
    """

    state_version, save_config, state_children = STATE_VERSION, False, {"policy": "policy"}

    def __init__(self, memory: ScoreMemory, batch_size: int, num_batches: int | None = None,
                 policy: str | Policy = "importance", seed: int = 0, drop_last: bool = False,
                 chunk: int | None = None, base_sampler: Any = None) -> None:
        self.memory = check_memory(memory)
        self.batch_size = check_int("batch_size", batch_size)
        self.policy = build_policy(policy)
        self.source = BaseSource(base_sampler, memory.num_samples)  # draws the base only when an epoch starts
        self.seed = check_seed("seed", seed)
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        self.drop_last = drop_last
        self.fixed_batches = None if num_batches is None else check_int("num_batches", num_batches)
        self.chunk = self.policy.default_chunk if chunk is None else check_int("chunk", chunk)
        self._valid_selection = self.policy.valid_selection
        self._world = World()
        self.rank, self.world_size = self._world.rank, self._world.size
        self._epoch = 0
        self.plan: EpochPlan = ShuffledPass.begin(self.policy, memory, self._shape(), self.seed, 0)
        self.policy.attach(memory)  # after every check: a policy writes its fixed columns here
        self._started = False  # whether the current epoch's start (policy, plan, length) happened
        self._drawn_to_end = False  # whether an iterator of this process drew the current epoch's last batch
        self._hold = False  # set_epoch named the current epoch: the next iterator continues it, even if it ended
        self._planned: tuple[int, int, int] | None = None  # (memory updates, rank, world) when len() started it
        self._agreed: int | None = None  # the epoch whose configuration the ranks agreed on (agree_on_config)
        self.ledger = Ledger()
        self._tag = object()  # names this sampler's batches in the memory's queue
        self.pipeline = UpdatePipeline(memory, self.policy, self._tag)
        self._chunk: Chunk | None = None  # this rank's shares of the batches drawn ahead (recorded in the ledger)
        self._device = torch.device("cpu")  # of the latest losses: where `weights` puts its tensors
        self.tally = Tally(memory.num_classes)

    def _shape(self) -> Shape:  # at the current world size
        return Shape(self.batch_size, self.world_size, self.fixed_batches, self.drop_last)

    @property
    def num_batches(self) -> int:
        """Batches of the current epoch as decided so far: its plan's once it started, else a pass over all N (a
        subset policy decides its epoch's length when the epoch starts: `len(sampler)` starts it)."""
        return self.plan.num_batches if self._started else self.batches_for(self.memory.num_samples)

    def batches_for(self, samples: int) -> int:
        """Batches of an epoch over `samples` samples at the current world size (`num_batches` if it was fixed)."""
        return self._shape().count(check_int("samples", samples))

    def __len__(self) -> int:
        """Batches the current epoch yields. Asked before the epoch starts (as DataLoader, tqdm, Lightning and the
        HF Trainer ask), it starts the epoch as the first iterator would (a subset policy decides its subset from
        the memory as it is now); if the memory or the world size changes before the first iterator, that
        iterator decides the epoch again. A score-dependent policy's later epochs are known when each starts
        (docs/sampler.md: bound such a run by steps for a schedule that must end exactly)."""
        if not self._started:
            self._begin_epoch(early=True)
        return self.plan.num_batches

    @property
    def statistics_needed(self) -> tuple[str, ...]:
        """The `update()` statistics its policy and guards read (sorted; often none): pass them to
        `hardmine.scores.statistics(logits, targets, names=sampler.statistics_needed)`."""
        return tuple(sorted(self.policy.statistics_read()))

    @property
    def position(self) -> int:
        """Batches of the current epoch consumed so far (by `update` or `weights`)."""
        return self.ledger.consumed

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iterator draw epoch `epoch`: from its start, unless it is the current epoch; then the next
        iterator continues it (its batches not consumed yet; none once it is consumed), so a loop resumed with
        `for epoch in range(saved_epoch, E): sampler.set_epoch(epoch)` from a checkpoint taken on an epoch's last
        batch goes on with the next epoch, not one more."""
        epoch = check_epoch("epoch", epoch)
        if epoch != self._epoch:
            self._new_epoch(epoch)
        else:
            self._hold = True

    def _new_epoch(self, epoch: int) -> None:
        self._epoch, self._started, self._drawn_to_end, self._chunk = epoch, False, False, None
        self._hold = False
        self._planned = self._agreed = None
        self.ledger.new_epoch()

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._epoch_batches()

    def _epoch_batches(self) -> Iterator[np.ndarray]:
        hold, self._hold = self._hold, False
        if self._started and not hold and (self._drawn_to_end or self.ledger.consumed >= self.plan.num_batches):
            self._new_epoch(self._epoch + 1)
        if self._planned is not None and self._planned != (self.memory.updates, *World.now()):
            self._started = False  # len() decided the epoch; the memory or the world changed since: decide again
        self._planned = None
        if not self._started:
            self._begin_epoch()
        if self._agreed != self._epoch:
            if self.world_size > 1:
                agree_on_config("HardExampleSampler", configuration(self))  # before any data collective
            self._agreed = self._epoch
        k = self.ledger.consumed
        while k < self.plan.num_batches:
            chunk = self._chunk
            if chunk is None or not chunk.first <= k < chunk.end:
                started = time.perf_counter()
                chunk = self._next_chunk(k)
                self.tally.mining_seconds += time.perf_counter() - started
            self.ledger.yielding()
            yield chunk.served[k - chunk.first]
            k += 1
        self._drawn_to_end = True

    def _begin_epoch(self, early: bool = False) -> None:
        """Start the current epoch (`early`: for `len()`, before an iterator draws from it): the policy's epoch
        start, then the plan it names decides the epoch (its subset, its length)."""
        started = time.perf_counter()
        self.rank, self.world_size = self._world.read()
        self.flush(wait=True)
        policy, memory, shape = self.policy, self.memory, self._shape()
        policy.start_epoch(self._epoch, memory)
        self.plan = self.source.begin(policy.epoch_plan(self._epoch), policy, memory, shape, self.seed, self._epoch)
        self._chunk = None
        self.tally.new_epoch()
        self._started = True
        self._planned = (memory.updates, self.rank, self.world_size) if early else None
        self.tally.mining_seconds += time.perf_counter() - started

    def _next_chunk(self, k: int) -> Chunk:
        """The chunk that serves batch k: the batches drawn before from k on and not consumed (after a resume, or
        an iterator given up), else `chunk` batches the plan draws now; recorded in the ledger."""
        stored = self.ledger.stored_from(k)
        if stored is None:
            self.flush(wait=True)
            chunk = self.plan.draw(k, min(self.chunk, self.plan.num_batches - k))
        else:
            chunk = Chunk(k, *stored)
        self.ledger.record(self._adopt(chunk))
        self.tally.count_drawn(chunk, self.memory.labels)
        return chunk

    def _adopt(self, chunk: Chunk) -> Chunk:
        """Make `chunk` the current one: this rank's shares cut (weights on the device of the latest losses) and
        known to the ledger."""
        self._chunk = share(chunk, self.rank, self.world_size, self._device)
        for mine, key in zip(chunk.shares, chunk.keys):
            self.ledger.remember(mine, key)
        return chunk

    def weights(self, indices: Any) -> BatchWeights:
        """Importance weights [B] (float32) of the samples `indices` [B] (a yielded batch or a part of one): those
        of the probabilities the batch was drawn with (ones for plain shuffling; a batch policy's are decided by
        `update`). A `BatchWeights` on the device of the latest losses: a tensor of its own (nothing is shared
        with later calls) that `hm.reduce` reads in one dot product."""
        found = self.ledger.find(indices)
        if found is not None:
            consumed = found.indices
            chunk = self._chunk
            if found.weights.device != self._device and chunk is not None and \
                    any(mine is found for mine in chunk.shares):
                found = self._adopt(chunk).shares[[mine is found for mine in chunk.shares].index(True)]
        else:
            found = self.ledger.part(check_indices("indices", indices, self.memory.num_samples))
            consumed = found.indices
        self.plan.check_weights(found.weights)  # before the batch counts as consumed
        self.ledger.consume(indices, consumed)
        weights, over_size = found.weights, found.over_size
        if weights.device != self._device:
            weights, over_size = weights.to(self._device, non_blocking=True), None
        self.tally.last_weights = weights
        return BatchWeights.of(weights, found.valid, over_size)

    def selection(self, indices: Any) -> torch.Tensor:
        """Boolean [B]: which samples `indices` [B] an in-batch loss (OHEM, focal) may use, after the guards'
        per-batch selection (a noise guard leaves out its suspects); all True without such a guard.

        Use it in the loop as `loss_fn(logits[keep], targets[keep])` with `keep = sampler.selection(idx)`.
        """
        idx = check_indices("indices", indices, self.memory.num_samples)
        return torch.from_numpy(np.ascontiguousarray(self.policy.selection(np.ones(idx.size, dtype=bool), idx)))

    def update(self, indices: Any, per_sample_loss: Any, **stats: Any) -> None:
        """Record what the model found hard: the loss (or any score, higher = harder) [B] of `indices` [B].

        per_sample_loss: [B] on any device (from an accelerator copied to the host without waiting for it).
        stats: optional per-sample statistics for the memory (`**hardmine.scores.statistics(logits, targets)`).
        Checked and queued on the memory by the update pipeline (hardmine.sampling.updates; values on an
        accelerator are checked when they arrive), written every `chunk` batches and before any read of the
        memory. Under torch.distributed every rank raises or none does (`agree_on_errors`, which also compares
        the statistics' names), then the indices (int64) and values (float) of every rank are gathered, so every
        rank's memory and priorities stay identical. Bad input raises before anything changes. The batch counts
        as consumed."""
        key = key_of(indices)
        found = self.ledger.find(indices, key)
        selecting = self.policy.selects(self._epoch)
        if self.world_size > 1:
            with agree_on_errors("HardExampleSampler.update") as alike:  # every rank raises, or none does
                local, values = self._receive(indices, found, per_sample_loss, stats)
                alike["statistics"] = sorted(set(values) - {"scores"})  # every rank gathers the same ones
                host = self.pipeline.check(local, values)
        else:
            local, values = self._receive(indices, found, per_sample_loss, stats)
            arrived = all(v.ready for v in values.values()) if stats else values["scores"].ready
            host = self.pipeline.check(local, values) if selecting or arrived else None  # needs them now, or has
        own = values["scores"]  # this rank's values (stats' loss_variance pairs them with this rank's weights)
        self._device = own.device
        if host is None:
            self.pipeline.queue(local, values, checked=False)
        else:
            idx = local
            if self.world_size > 1:
                idx = all_gather_1d(torch.from_numpy(local)).numpy()
                host = {name: all_gather_1d(torch.from_numpy(v)).numpy() for name, v in host.items()}
            if selecting:
                offset = rank_offset(local.size)
                found = Yielded.selected(local, self.policy.guarded_select(host["scores"], idx)[
                    offset: offset + local.size], self._valid_selection)
                self.ledger.remember(found)
            self.pipeline.queue(idx, host, checked=True)
        self.ledger.consume(indices, local, key if found is not None else None)
        self.tally.last_update = None if found is None else (found.weights, own)
        self.ledger.took(indices, found)  # `weights(indices)` right after finds the batch at once
        if self.memory.queued >= self.chunk:
            self.flush(wait=False)

    def _receive(self, indices: Any, found: Yielded | None, per_sample_loss: Any,
                 stats: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """The batch's indices (the sampler's own array, or a checked copy: the queue keeps them until the write)
        and host copies of its values, after the plan's check that `update` may take the batch."""
        local = found.indices if found is not None else \
            check_indices("indices", indices, self.memory.num_samples).copy()
        self.plan.check_update(local, self.ledger)
        return local, self.pipeline.receive(local, per_sample_loss, stats)

    def flush(self, wait: bool = True) -> None:
        """Have the memory write its queued updates now, and re-prioritise the samples written (the sampler does
        it every `chunk` batches, before drawing, and at an epoch's start; any read of the memory writes them).

        wait: False writes only the updates whose values have already arrived from an accelerator.
        Raises ValueError, naming the argument, if values that arrived late do not pass `update`'s checks; that
        batch's update is dropped and nothing is written.
        """
        started = time.perf_counter()
        self.memory.drain(wait)
        for written in self.memory.take_written(self._tag):
            self.plan.refresh(written)
        self.tally.mining_seconds += time.perf_counter() - started

    def stats(self) -> dict[str, float]:
        """Numbers for logging (O(N): call once an epoch or every few hundred steps); see
        hardmine.sampling.tally.Tally.report for each. Under torch.distributed it runs no collective (one rank may
        call it alone, as rank-zero logging does): the memory's numbers are every rank's alike, the per-batch ones
        (weights, loss_variance, class_share) this rank's."""
        return self.tally.report(self.memory, self.policy, self._epoch, self.ledger.consumed, self.num_batches)

    def _state_values(self) -> dict[str, Any]:
        """The state (then the policy's, a child, and state_version): the exact sequence of batches continues from
        it, with the first `DRAWN_SAVED` (256) drawn but not consumed (ledger); the memory has its own."""
        return {"seed": self.seed, "epoch": self._epoch, "position": self.ledger.consumed,
                "num_samples": self.memory.num_samples, "started": self._started, "drawn": self.ledger.state_dict(),
                "batch_size": self.batch_size, "fixed_batches": self.fixed_batches, "world_size": self.world_size,
                "epoch_state": self.plan.state}

    def _parse_state(self, state: Any, num_samples: int | None = None, use_saved_config: bool = False) -> Parsed:
        """The check (sampler_state.parse_state: policy and guards too, a differing seed or policy argument only
        with use_saved_config); queued updates are written (ones that arrived bad raise before any assignment)."""
        self.rank, self.world_size = self._world.read()
        parsed = parse_state(self, state, use_saved_config)
        self.memory.drain(wait=True)
        return parsed

    def _assign_state(self, values: dict[str, Any]) -> None:
        """After the policy's: the next iterator serves the batches drawn, not consumed, as drawn, then draws on."""
        self.memory.take_written(self._tag)  # the consumed batches' updates: the new plan reads the memory whole
        self.seed, self._epoch, self._started = values["seed"], values["epoch"], values["started"]
        self.plan = self.source.restore(self.policy, self.memory, self._shape(), self.seed, self._epoch,
                                        values["epoch_state"])
        self.ledger._assign_parsed(values["drawn"])  # its checked records, with the sampler's own
        self._drawn_to_end = self._hold = False
        self._planned = self._agreed = self._chunk = None
        self.tally.counted = max([self.ledger.consumed, *(p + 1 for p in values["drawn"].values["records"])])

__all__ = ["HardExampleSampler", "WithIndex"]
