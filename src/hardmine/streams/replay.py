"""HardReplay: a bounded buffer of the hardest recent samples of a stream (their tensors, not only their ids),
mixed back into the batches that are back-propagated.

Eviction is by priority and age together: a sample's key is its selection score when it entered, halved every
`half_life` steps (a negative score doubled), and the buffer keeps the `capacity` largest keys, so a stale hard
sample gives way to fresh ones (the seed's "failing to refresh mined samples"). Draws are uniform over the
buffer, without replacement within a batch, from a seeded counter-based generator (exact resume).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hardmine._checks import check_int, check_number
from hardmine.state import Array, Field, Int, Stateful, from_saved
from hardmine.streams.batches import Spec, flatten, unflatten

_REPLAY_STREAM = 11  # the Philox counter word of the replay draws
_META_BYTES = 8 + 8 + 8 + 1  # id (int64), priority (float64), step (int64), used (bool)


class HardReplay(Stateful):
    """A replay buffer for `HardStream(..., replay=HardReplay(capacity, fraction))`.

    capacity: samples held (>= 1); memory is `capacity * bytes_per_sample()`.
    fraction: the share of replayed samples in each back-propagated batch, in [0, 1): with b samples kept from
        the candidates, round(fraction / (1 - fraction) * b) are drawn from the buffer and appended.
    half_life: steps after which an entry's priority counts half (> 0).
    seed: the draws, a function of (seed, number of draws).
    Every sample of the mixed batch weighs 1: replay is for the selecting policies (online_top_loss, rho_loss,
    selective_backprop), which promise no unbiased mean. The uniform policy, which does, refuses a replay buffer:
    on a stream each sample comes fresh once an epoch and its replays depend on its loss, so no per-sample weight
    known when it is drawn makes the mixed mean unbiased (it would need each sample's future replay count).
    """

    state_version = 1
    state_fields = {"ids": Array("int64", "C"), "priority": Array("float64", "C"), "step": Array("int64", "C", low=0),
                    "used": Array("bool", "C"), "draws": Int(0), "leaves": Field("any"), "spec": Field("any")}
    config_fixed = ("capacity",)  # the entries' arrays and the buffered tensors are [capacity, ...]

    def __init__(self, capacity: int, fraction: float = 0.25, half_life: float = 1000.0, seed: int = 0) -> None:
        self.capacity = check_int("capacity", capacity)
        self.fraction = check_number("fraction", fraction, 0.0, 1.0, high_inclusive=False)
        self.half_life = check_number("half_life", half_life, 0.0, low_inclusive=False)
        self.seed = check_int("seed", seed, minimum=0)
        self._ids = np.full(self.capacity, -1, dtype=np.int64)
        self._priority = np.zeros(self.capacity, dtype=np.float64)
        self._step = np.zeros(self.capacity, dtype=np.int64)
        self._used = np.zeros(self.capacity, dtype=bool)
        self._leaves: list[torch.Tensor] = []
        self._spec: Spec = None
        self._draws = 0

    def __len__(self) -> int:
        return int(self._used.sum())

    def bytes_per_sample(self) -> int | None:
        """Bytes one buffered sample takes (its tensors plus 25 bytes of id, priority, step and flag); None before
        the first sample arrived (the tensors' shapes are not known)."""
        if not self._leaves:
            return None
        return sum(leaf[0].numel() * leaf.element_size() for leaf in self._leaves) + _META_BYTES

    def replay_count(self, kept: int) -> int:
        """Samples to draw beside `kept` fresh ones: round(fraction / (1 - fraction) * kept), at most the size."""
        return min(len(self), round(self.fraction / (1.0 - self.fraction) * kept))

    def _keys(self, positions: np.ndarray, step: int) -> np.ndarray:
        decay = 0.5 ** ((step - self._step[positions]) / self.half_life)
        p = self._priority[positions]
        return np.where(p >= 0, p * decay, p / decay)

    def draw(self, count: int, step: int) -> tuple[np.ndarray, Any]:
        """(ids [count], batch) of `count` buffered samples drawn uniformly without replacement (count <= len)."""
        used = np.flatnonzero(self._used)
        rng = np.random.Generator(np.random.Philox(key=self.seed, counter=[0, _REPLAY_STREAM, self._draws, 0]))
        self._draws += 1
        chosen = rng.choice(used, size=count, replace=False)
        index = torch.from_numpy(chosen)
        return self._ids[chosen].copy(), unflatten([leaf.index_select(0, index) for leaf in self._leaves],
                                                   self._spec)

    def check_batch(self, batch: Any) -> tuple[list[torch.Tensor], Spec]:
        """The leaves and structure of a candidate batch, refused (naming the difference) when they do not match
        the buffered samples'."""
        leaves, spec = flatten(batch)
        if self._leaves:
            shapes = [(tuple(x.shape[1:]), x.dtype) for x in leaves]
            held = [(tuple(x.shape[1:]), x.dtype) for x in self._leaves]
            if spec != self._spec or shapes != held:
                raise ValueError(f"the batch's samples (structure {spec}, shapes and dtypes {shapes}) do not match "
                                 f"the replay buffer's ({self._spec}, {held})")
        return leaves, spec

    def offer(self, ids: np.ndarray, batch: Any, priorities: np.ndarray, step: int) -> None:
        """Offer the samples of a candidate batch (ids [C], priorities [C] float64, higher = harder) at `step`:
        the buffer keeps the `capacity` largest keys among its entries and them."""
        leaves, spec = self.check_batch(batch)
        if not self._leaves:
            self._leaves = [torch.zeros((self.capacity, *x.shape[1:]), dtype=x.dtype) for x in leaves]
            self._spec = spec
        used = np.flatnonzero(self._used)
        keys = np.concatenate([self._keys(used, step), priorities])
        order = np.argsort(-keys, kind="stable")[: self.capacity]  # ties: the older entry stays
        evicted = np.setdiff1d(used, used[order[order < used.size]], assume_unique=True)
        admitted = order[order >= used.size] - used.size
        if admitted.size == 0:
            return
        slots = np.concatenate([np.flatnonzero(~self._used), evicted])[: admitted.size]
        self._used[evicted] = False
        self._ids[slots], self._priority[slots], self._step[slots] = ids[admitted], priorities[admitted], step
        self._used[slots] = True
        source, target = torch.from_numpy(admitted), torch.from_numpy(slots)
        for store, leaf in zip(self._leaves, leaves):
            store[target] = leaf.index_select(0, source.to(leaf.device)).to("cpu")

    def _state_sizes(self) -> dict[str, int]:
        return {"C": self.capacity}

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """The buffered tensors [capacity, ...] and the structure `spec` that puts a batch of them together."""
        cap, leaves, spec = self.capacity, values["leaves"], from_saved(values["spec"])
        if not isinstance(leaves, list) or not all(isinstance(x, torch.Tensor) and x.ndim >= 1 and x.shape[0] == cap
                                                   for x in leaves):
            raise ValueError(f"HardReplay state['leaves'] must be a list of tensors [capacity={cap}, ...]")
        try:
            expected = len(flatten(unflatten(leaves, spec))[0]) if leaves else 0
        except (TypeError, ValueError, IndexError, KeyError):
            expected = -1
        if (spec is None) != (not leaves) or expected != len(leaves):
            raise ValueError(f"HardReplay state['spec'] {spec!r} does not describe its {len(leaves)} tensors")
        return {**values, "leaves": [x.clone() for x in leaves], "spec": spec}

    def __repr__(self) -> str:
        return f"HardReplay({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"
