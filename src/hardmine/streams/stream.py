"""HardStream: hard example mining over an iterable of samples (an IterableDataset, a `datasets` IterableDataset,
a generator factory), with no data set size N: candidate batches with stream ids, and exact resume."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from torch.utils.data._utils.collate import default_collate

from hardmine._checks import check_int
from hardmine.distributed import rank_and_world
from hardmine.sampling.policies import Policy
from hardmine.state import Array, Field, Int, Stateful
from hardmine.streams.batches import signature
from hardmine.streams.reference import Reference
from hardmine.streams.replay import HardReplay
from hardmine.streams.selection import StreamSelection, check_ids
from hardmine.streams.source import EPOCH_SPAN, describe, epoch_source, locate, shard_samples, stream_ids


class HardStream(Stateful, IterableDataset):
    """Candidate batches from a stream of samples, and what of them to back-propagate.

    ```
    stream = hm.HardStream(samples, batch_size=64, candidates=4, policy="online_top_loss")
    for ids, (x, y) in DataLoader(stream, batch_size=None, num_workers=stream.num_workers):
        with torch.no_grad():
            stream.update(ids, F.cross_entropy(model(x), y, reduction="none"))  # scores of all candidates
        ids, (x, y) = stream.select(ids, (x, y))       # the kept ones (+ replayed samples)
        loss = hm.reduce(F.cross_entropy(model(x), y, reduction="none"), stream.weights(ids))
    ```
    iterable: an iterable of samples (re-iterated each epoch, told the epoch by its `set_epoch` when it has one)
        or a factory `epoch -> iterable`. It must give the same samples in the same order for the same epoch
        (seeded shuffling), which exact resume relies on, and must not split itself across DataLoader workers:
        the stream does (a `datasets` IterableDataset is split by its own `shard()` where its data sources allow).
    batch_size: B, samples back-propagated per step; each yielded batch holds `candidates * B` samples.
    candidates: >= 1 (1 with the uniform policy).
    policy: "online_top_loss", "rho_loss", "selective_backprop", "uniform", or a candidate or batch Policy object
        (no guards, no warm-up: they need a per-sample memory over epochs).
    replay: a HardReplay, or None.
    drop_last: drop a shard's last batch when it is smaller than `candidates * B` (default: keep it; a candidate
        policy then keeps ceil(size / candidates) of it).
    reference: rho_loss's reference model (nn.Module, cross-entropy on (inputs, targets, ...)) or a callable
        `batch -> irreducible losses [C]`, scored on each candidate batch in `select`.
    num_workers: the DataLoader's `num_workers`, which must be the same (each worker reads one shard).
    seed: the policy's (stochastic selection, selective backprop's draws).

    Shards and ids: with k = max(1, num_workers) workers and world size W, the stream has k * W shards; rank r's
    worker w reads shard r * k + (w + rotation) % k, every (k * W)-th sample of the source (`source.py`). A sample's
    stream id (int64) is `epoch * 2**40 + position_in_shard * k * W + shard`. Under torch.distributed each rank
    reads its own shards and selects from its own candidates only (selection is rank-local): save every rank's
    `state_dict()`. Rank and world size are read at construction and at `set_epoch` (a DataLoader worker cannot).
    Call `set_epoch(epoch)` before each epoch; a DataLoader with `persistent_workers=True` would not see it.
    """

    state_version = 2
    state_fields = {"source": Field("str"), "world_size": Int(1), "epoch": Int(0),
                    "consumed": Array("int64", "shards", low=0), "next": Int(0, "last_worker")}
    state_children = {"selection": "selection"}
    config_exclude = ("iterable", "policy", "replay", "reference")  # objects: the selection carries the policy's
    # and the replay buffer's names and arguments; the source is the field "source"

    def __init__(self, iterable: Iterable | Callable[[int], Iterable], batch_size: int, candidates: int = 1,
                 policy: str | Policy = "uniform", *, replay: HardReplay | None = None, drop_last: bool = False,
                 reference: Reference | None = None, num_workers: int = 0, seed: int = 0) -> None:
        if not (isinstance(iterable, Iterable) or callable(iterable)):
            raise TypeError(f"iterable must be an iterable of samples or a factory epoch -> iterable, got "
                            f"{type(iterable).__name__}")
        self.iterable = iterable
        self.batch_size = check_int("batch_size", batch_size)
        self.candidates = check_int("candidates", candidates)
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be a bool, got {drop_last!r}")
        self.drop_last = drop_last
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        self.seed = check_int("seed", seed, minimum=0)
        self.selection = StreamSelection(policy, self.candidates, reference, replay, self.seed)
        self._source = describe(iterable)
        self.reference = reference
        self._rank, self._world = rank_and_world()
        self._epoch = 0
        self._consumed = np.zeros(self.shards, dtype=np.int64)  # samples the loop consumed, per shard
        self._next = 0  # the worker-local shard of the batch after the last consumed one

    @property
    def policy(self) -> Policy:
        """The policy that selects."""
        return self.selection.policy

    @property
    def replay(self) -> HardReplay | None:
        """The replay buffer, or None."""
        return self.selection.replay

    @property
    def world_size(self) -> int:
        """The number of ranks read at construction or at the last `set_epoch`."""
        return self._world

    @property
    def shards(self) -> int:
        """max(1, num_workers) x world size."""
        return max(1, self.num_workers) * self._world

    @property
    def epoch(self) -> int:
        """The epoch the stream reads."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` (reading rank and world size): from its beginning, or, for the epoch a loaded state is in,
        from where that state stopped."""
        epoch = check_int("epoch", epoch, minimum=0)
        rank, world = rank_and_world()
        if epoch == self._epoch and (rank, world) == (self._rank, self._world):
            return
        self._rank, self._world, self._epoch = rank, world, epoch
        self._consumed = np.zeros(self.shards, dtype=np.int64)
        self._next = 0

    # ---- reading (in a DataLoader worker, or in the training process with num_workers=0) ----
    def __iter__(self) -> Iterator[tuple[torch.Tensor, Any]]:
        info = get_worker_info()
        workers = 0 if info is None else info.num_workers
        if workers != self.num_workers:
            raise ValueError(f"HardStream(num_workers={self.num_workers}) is read by {workers} DataLoader workers: "
                             "pass the same num_workers to both")
        k = max(1, workers)
        shard = self._rank * k + ((0 if info is None else info.id) + self._next) % k
        return self._batches(self._epoch, shard, self.shards, int(self._consumed[shard]))

    def _batches(self, epoch: int, shard: int, shards: int, skip: int) -> Iterator[tuple[torch.Tensor, Any]]:
        samples = shard_samples(epoch_source(self.iterable, epoch), shard, shards)
        collections.deque(islice(samples, skip), maxlen=0)  # consumed before the state was saved
        size, position = self.candidates * self.batch_size, skip
        while True:
            pending = list(islice(samples, size))  # no Python step per sample
            if not pending or (len(pending) < size and self.drop_last):
                return
            yield self._collate(pending, epoch, shard, shards, position)
            if len(pending) < size:
                return
            position += size

    def _collate(self, samples: list, epoch: int, shard: int, shards: int,
                 first: int) -> tuple[torch.Tensor, Any]:
        ids = stream_ids(epoch, shard, shards, first, len(samples))
        try:
            return torch.from_numpy(ids), default_collate(samples)
        except (TypeError, RuntimeError, ValueError, KeyError, IndexError) as error:
            sigs = [signature(s) for s in samples]
            common = collections.Counter(map(repr, sigs)).most_common(1)[0][0]
            bad = next((i for i, s in enumerate(sigs) if repr(s) != common), 0)
            raise ValueError(
                f"malformed sample at stream position {first + bad} of shard {shard} in epoch {epoch} (stream id "
                f"{int(ids[bad])}): it is {sigs[bad]!r} where the batch's others are {common}; "
                f"collating failed with: {error}") from None

    # ---- the loop's touch points (in the training process) ----
    def update(self, ids: Any, per_sample_loss: Any) -> None:
        """Record the loss (any score, higher = harder) [C] of every sample of the candidate batch `ids` [C] (no
        gradient needed); the batch counts as consumed (a saved state resumes after it). The policy decides now,
        except rho_loss, which scores its reference in `select`."""
        k = max(1, self.num_workers)
        fast = _yielded(ids, self._epoch, self.shards)
        if fast is None:  # not one shard's consecutive positions: checked and split sample by sample
            idx = check_ids(ids)
            shards, positions = locate(idx, self._epoch, self.shards)
            owner = shards // k
            if (owner != self._rank).any():
                raise ValueError(f"ids hold {int(idx[owner != self._rank][0])}, of a shard that rank {self._rank} "
                                 f"does not read (it reads shards {self._rank * k} .. {self._rank * k + k - 1})")
            self.selection.record(idx, per_sample_loss)
            np.maximum.at(self._consumed, shards, positions + 1)
            last = int(shards[-1])
        else:
            idx, last, end = fast
            if last // k != self._rank:
                raise ValueError(f"ids hold {int(idx[0])}, of shard {last}, which rank {self._rank} does not read "
                                 f"(it reads shards {self._rank * k} .. {self._rank * k + k - 1})")
            self.selection.record(idx, per_sample_loss, idx.tobytes())
            if end > self._consumed[last]:
                self._consumed[last] = end
        self._next = (last % k + 1) % k

    def select(self, ids: Any, batch: Any) -> tuple[torch.Tensor, Any]:
        """(ids, batch) to back-propagate from the candidate batch `ids` [C] with its data `batch`, after `update`:
        the kept candidates in order, then the replayed samples; their weights are `weights(ids)`."""
        return self.selection.select(ids, batch)

    def weights(self, ids: Any) -> torch.Tensor:
        """Weights (float32 [len(ids)]) for `hm.reduce`: of a batch `select` returned (1 for every sample: the mean
        over the kept and the replayed), or of a whole candidate batch (the policy's: 0 for a dropped candidate;
        use `hm.reduce(loss, w, normalize="weighted")` with a candidate policy)."""
        return self.selection.weights(ids)

    def stats(self) -> dict[str, float]:
        """The policy's numbers (keep ratio) and the replay buffer's size."""
        out = dict(self.policy.stats())
        if self.replay is not None:
            out["replay_size"] = float(len(self.replay))
        return out

    # ---- state: the stream position (epoch, samples consumed per shard, the next shard) and the selection's ----
    def _state_sizes(self) -> dict[str, int]:
        return {"shards": self.shards, "last_worker": max(1, self.num_workers) - 1}

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """A state of another source or world size refused; the position to assign."""
        if values["source"] != self._source:
            raise ValueError(f"the state is of the stream {values['source']}, this one reads {self._source}")
        if values["world_size"] != self._world:
            raise ValueError(f"the state was saved with world size {values['world_size']}, this run has "
                             f"{self._world}: resume with as many ranks")
        return {key: values[key] for key in ("epoch", "consumed", "next")}

    def __repr__(self) -> str:
        return (f"HardStream(batch_size={self.batch_size}, candidates={self.candidates}, policy={self.policy!r}, "
                f"replay={self.replay!r}, num_workers={self.num_workers})")



def _yielded(ids: Any, epoch: int, shards: int) -> tuple[np.ndarray, int, int] | None:
    """(a copy of the ids, shard, position after the last) of a yielded batch: a 1-D int64 CPU tensor of `epoch`'s
    ids whose first and last are `shards` x (length - 1) apart (the samples between only key the batch, so the
    ends decide the position); None for anything else (then the full checks run)."""
    if not (type(ids) is torch.Tensor and ids.dtype == torch.int64 and ids.ndim == 1 and ids.device.type == "cpu"
            and ids.numel()):
        return None
    idx = ids.numpy().copy()
    first, last = int(idx[0]) - epoch * EPOCH_SPAN, int(idx[-1]) - epoch * EPOCH_SPAN
    if first < 0 or last >= EPOCH_SPAN or last - first != (idx.size - 1) * shards:
        return None
    return idx, first % shards, last // shards + 1
