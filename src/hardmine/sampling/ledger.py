"""The ledger: which batches the sampler yielded, which of them the loop has consumed, and their weights.

DataLoader workers, Lightning and accelerate draw batches ahead of the loop. A checkpoint must count the batches
the loop used (`update` or `weights` was called with them), and a resumed run must serve the batches drawn but
not used again, *as they were drawn*: a priority policy drew them from the priorities of that moment, and the
updates since have changed the priorities, so drawing them anew would give other batches than an uninterrupted
run trains on.

One question, "which batch is this?", answered in one place (`find`): the object the loop passed last (`update`
then `weights` with the same tensor), else the bytes of its indices among the batches yielded lately (the last
`RECENT`, across epochs), else (`part`) a part of one of them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import numpy as np
import torch

from hardmine.sampling.chunking import Chunk, Yielded
from hardmine.state import Array, Field, Int, Stateful

DRAWN_SAVED = 256
"""The most drawn-but-unconsumed batches a state holds (the first ones after the consumed position)."""
RECENT = 256
"""Yielded batches whose weights stay available (covers DataLoader prefetching)."""


def key_of(indices: Any) -> bytes | None:
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


class Ledger(Stateful):
    """The current epoch's consumed count and drawn-but-unconsumed batches (by position), and the batches yielded
    lately (by the bytes of this rank's share).

    A record is the global batch (every rank's share, int64 indices [G] and float64 weights [G]), so one rank's
    state restores every rank; the share this rank yielded is what a consuming call is matched by.

    State (`hardmine.state.Stateful`): the sampler's "drawn" entry, checked and assigned in the sampler's step;
    a part of the sampler's state, versioned by it (no "state_version" of its own, no "config").
    """

    state_version, save_config = None, False
    state_fields = {"consumed": Int(0), "positions": Array("int64", low=0), "indices": Field("any"),
                    "weights": Field("any")}

    def __init__(self) -> None:
        self.consumed = 0
        self._records: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._by_key: dict[bytes, deque[int]] = {}
        self._local: dict[int, tuple[np.ndarray, bytes]] = {}  # position -> (this rank's share, its bytes)
        self._recent: OrderedDict[bytes, Yielded] = OrderedDict()
        self._last: tuple[Any, Yielded | None] | None = None  # (the object `update` took, its batch)
        self._consumed_by: Any = None  # the object of the batch consumed last

    def new_epoch(self) -> None:
        """Nothing drawn, nothing consumed (the batches yielded lately stay known)."""
        self.consumed = 0
        self._records, self._by_key, self._local = {}, {}, {}
        self._consumed_by = None

    def record(self, chunk: Chunk) -> None:
        """The batches of `chunk` (shared out: `chunking.share`) are handed to the loader: their global indices
        and weights, by position, and this rank's shares, which `consume` matches. Chunks are recorded in
        increasing position order (an iterator counts up)."""
        for position, indices, weights, mine, key in zip(range(chunk.first, chunk.end), chunk.indices,
                                                         chunk.weights, chunk.shares, chunk.keys):
            self._records[position] = (indices, weights)
            if position not in self._local:
                self._local[position] = (mine.indices, key)
                self._by_key.setdefault(key, deque()).append(position)

    def remember(self, batch: Yielded, key: bytes | None = None) -> None:
        """`batch` was yielded (or its weights decided by `update`): `find` returns it."""
        self._recent[batch.indices.tobytes() if key is None else key] = batch
        while len(self._recent) > RECENT:
            self._recent.popitem(last=False)

    def yielding(self) -> None:
        """A batch is being yielded: the object `update` took last no longer names the current batch."""
        self._last = None

    def took(self, indices: Any, batch: Yielded | None) -> None:
        """`update` took the object `indices` as `batch`: `weights(indices)` right after finds it at once."""
        self._last = (indices, batch)

    def knows(self, local: np.ndarray) -> bool:
        """Whether `local` [B] (int64) is a batch yielded lately (as a whole)."""
        return local.tobytes() in self._recent

    def find(self, indices: Any, key: bytes | None = None) -> Yielded | None:
        """The yielded batch the object `indices` is (the one `update` took last, or by its bytes), or None."""
        last = self._last
        if last is not None and last[0] is indices:
            return last[1]
        return self._recent.get(key_of(indices) if key is None else key)

    def part(self, idx: np.ndarray) -> Yielded:
        """The samples `idx` [b] (checked int64) of the latest yielded batch that holds them all, with their
        weights (float32 [b], valid when the batch's are); raises ValueError when no recent batch does."""
        for batch in reversed(self._recent.values()):
            order = np.argsort(batch.indices, kind="stable")
            pos = np.minimum(np.searchsorted(batch.indices[order], idx), batch.indices.size - 1)
            if np.array_equal(batch.indices[order][pos], idx):
                weights = batch.weights.cpu().numpy()[order][pos].astype(np.float32)
                return Yielded(idx, torch.from_numpy(weights), None, batch.valid)
        raise ValueError(f"indices (first: {idx[:5].tolist()}) are not part of any of the last {RECENT} batches "
                         "this sampler yielded; pass the indices of a yielded batch")

    def stored_from(self, k: int) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
        """The global batches (indices, weights) drawn from position k on, consecutive and not consumed yet, or
        None when batch k was not drawn."""
        if k not in self._records:
            return None
        indices, weights = [], []
        while k in self._records:
            indices.append(self._records[k][0])
            weights.append(self._records[k][1])
            k += 1
        return indices, weights

    def consume(self, indices: Any, local: np.ndarray, key: bytes | None = None) -> None:
        """The loop used the batch whose indices (or a part of them) are `local` [B], passed as the object
        `indices` (`key`: `local.tobytes()`, when the caller has it): it and those before count, once for the
        `weights` and `update` calls of a step with the same object."""
        if indices is self._consumed_by:
            return
        self._consumed_by = indices
        positions = self._by_key.get(local.tobytes() if key is None else key)
        position = positions[0] if positions else self._find_part(local)
        if position is None:
            return  # consumed already (e.g. `weights` after `update`)
        self.consumed = max(self.consumed, position + 1)
        while self._local and next(iter(self._local)) <= position:  # recorded in increasing position order
            done = next(iter(self._local))
            self._records.pop(done, None)
            key = self._local.pop(done)[1]
            self._by_key[key].remove(done)
            if not self._by_key[key]:
                del self._by_key[key]

    def _find_part(self, local: np.ndarray) -> int | None:
        for position in sorted(self._local):
            if np.isin(local, self._local[position][0]).all():
                return position
        return None

    def _state_values(self) -> dict[str, Any]:
        """The consumed count and the first `DRAWN_SAVED` unconsumed records (positions, int64 indices [G],
        float64 weights [G]); the base saves them as tensors (weights_only-loadable)."""
        positions = sorted(self._records)[:DRAWN_SAVED]
        return {"consumed": self.consumed, "positions": torch.tensor(positions, dtype=torch.int64),
                "indices": [self._records[p][0] for p in positions],
                "weights": [self._records[p][1] for p in positions]}

    def _state_owner(self) -> str:
        return "HardExampleSampler ledger (state['drawn'])"

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """The records checked against each other: as many batches as positions, positions increasing from the
        consumed count, int64 indices >= 0 with as many non-negative weights (NaN where `update` decides them).
        Against the epoch (positions below its batch count, indices below N) the sampler checks them."""
        consumed, positions = values["consumed"], values["positions"]
        indices, weights = state["indices"], state["weights"]
        if not isinstance(indices, list) or not isinstance(weights, list):
            raise ValueError(f"state['drawn'] must hold lists of index and weight arrays, got "
                             f"{type(indices).__name__} and {type(weights).__name__}")
        indices, weights = [np.asarray(t) for t in indices], [np.asarray(t) for t in weights]
        if len(indices) != positions.size or len(weights) != positions.size:
            raise ValueError(f"state['drawn'] has {positions.size} positions, {len(indices)} index and "
                             f"{len(weights)} weight arrays; they must match")
        if positions.size and (positions.min() < consumed or (np.diff(positions) <= 0).any()):
            raise ValueError(f"state['drawn']['positions'] {positions.tolist()} must increase from the consumed "
                             f"count {consumed}")
        for i, w in zip(indices, weights):
            if i.dtype != np.int64 or i.ndim != 1 or w.shape != i.shape or np.isinf(w).any() or (w < 0).any() or \
                    (i.size and i.min() < 0):
                raise ValueError("state['drawn'] holds a batch that is not int64 indices (>= 0) with as many "
                                 "weights (non-negative; NaN where update() decides them)")
        return {"consumed": consumed, "records": {int(p): (i.copy(), w.astype(np.float64))
                                                  for p, i, w in zip(positions, indices, weights)}}

    def _assign_state(self, values: dict[str, Any]) -> None:
        """Take the checked records; the batches yielded before are forgotten."""
        self.new_epoch()
        self.consumed, self._records = values["consumed"], values["records"]
        self._recent.clear()
        self._last = None
