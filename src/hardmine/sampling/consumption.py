"""Consumption: which of an epoch's drawn batches the training loop has used, and the drawn ones it has not.

DataLoader workers, Lightning and accelerate draw batches ahead of the loop. A checkpoint must count the batches
the loop used (`update` or `weights` was called with them), and a resumed run must serve the batches drawn but
not used again, *as they were drawn*: a priority policy drew them from the priorities of that moment, and the
updates since have changed the priorities, so drawing them anew would give other batches than an uninterrupted
run trains on.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch

from hardmine._checks import check_int

DRAWN_SAVED = 256
"""The most drawn-but-unconsumed batches a state holds (the first ones after the consumed position)."""


class Consumption:
    """The consumed count of the current epoch and the drawn-but-unconsumed batches, by position in the epoch.

    A record is the global batch (every rank's share, int64 indices [G] and float64 weights [G]), so one rank's
    state restores every rank; `local` is this rank's share of it, the key a consuming call is matched by.
    """

    def __init__(self) -> None:
        self.consumed = 0
        self._records: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._by_key: dict[bytes, deque[int]] = {}
        self._local: dict[int, tuple[np.ndarray, bytes]] = {}  # position -> (this rank's share, its bytes)

    def reset(self) -> None:
        """A new epoch: nothing drawn, nothing consumed."""
        self.__init__()

    def stored(self, position: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The global batch drawn at `position` and not consumed yet, or None."""
        return self._records.get(position)

    def record(self, position: int, indices: np.ndarray, weights: np.ndarray, local: np.ndarray,
               key: bytes | None = None) -> None:
        """Batch `position` was handed to the loader: its global `indices` and `weights`, this rank's `local`
        (`key`: `local.tobytes()`, when the caller has it).

        Positions are recorded in increasing order (an iterator starts at `consumed` and counts up)."""
        self._records[position] = (indices, weights)
        if position not in self._local:
            key = local.tobytes() if key is None else key
            self._local[position] = (local, key)
            self._by_key.setdefault(key, deque()).append(position)

    def consume(self, local: np.ndarray, key: bytes | None = None) -> None:
        """The loop used the batch whose indices (or a part of them) are `local` [B] (`key`: `local.tobytes()`,
        when the caller has it): it and those before count."""
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

    def state_dict(self) -> dict[str, Any]:
        """The consumed count and the first `DRAWN_SAVED` unconsumed records, as tensors (weights_only-loadable)."""
        positions = sorted(self._records)[:DRAWN_SAVED]
        return {"consumed": self.consumed, "positions": torch.tensor(positions, dtype=torch.int64),
                "indices": [torch.from_numpy(self._records[p][0].copy()) for p in positions],
                "weights": [torch.from_numpy(self._records[p][1].copy()) for p in positions]}

    @staticmethod
    def check_state(state: Any, num_batches: int, num_samples: int) -> dict[str, Any]:
        """`state` validated against an epoch of `num_batches` batches over `num_samples` samples, as numpy."""
        if not isinstance(state, dict) or set(state) != {"consumed", "positions", "indices", "weights"}:
            raise ValueError("state['drawn'] must be a dict with keys ['consumed', 'indices', 'positions', "
                             f"'weights'], got {sorted(state) if isinstance(state, dict) else type(state).__name__}")
        consumed = check_int("state['drawn']['consumed']", state["consumed"], minimum=0)
        if consumed > num_batches:
            raise ValueError(f"state['drawn']['consumed'] is {consumed}, past the epoch's {num_batches} batches")
        positions = np.asarray(state["positions"], dtype=np.int64)
        indices = [np.asarray(t) for t in state["indices"]]
        weights = [np.asarray(t) for t in state["weights"]]
        if positions.ndim != 1 or len(indices) != positions.size or len(weights) != positions.size:
            raise ValueError(f"state['drawn'] has {positions.size} positions, {len(indices)} index and "
                             f"{len(weights)} weight arrays; they must match")
        if positions.size and (positions.min() < consumed or positions.max() >= num_batches
                               or (np.diff(positions) <= 0).any()):
            raise ValueError(f"state['drawn']['positions'] {positions.tolist()} must increase within "
                             f"[{consumed}, {num_batches})")
        for i, w in zip(indices, weights):
            if i.dtype != np.int64 or i.ndim != 1 or w.shape != i.shape or np.isinf(w).any() or (w < 0).any() or \
                    (i.size and (i.min() < 0 or i.max() >= num_samples)):
                raise ValueError("state['drawn'] holds a batch that is not int64 indices in "
                                 f"[0, {num_samples}) with as many weights (non-negative; NaN where update() decides "
                                 "them)")
        return {"consumed": consumed, "records": {int(p): (i.copy(), w.astype(np.float64))
                                                  for p, i, w in zip(positions, indices, weights)}}

    def load(self, checked: dict[str, Any]) -> None:
        """Take a state returned by `check_state`."""
        self.reset()
        self.consumed, self._records = checked["consumed"], checked["records"]
