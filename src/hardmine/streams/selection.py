"""What a stream back-propagates: a policy's choice among each candidate batch, the replayed samples mixed in,
and the weights that `hm.reduce` takes, held per batch in the training process (not in DataLoader workers)."""

from __future__ import annotations

import inspect
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hardmine._checks import check_indices, check_values
from hardmine.sampling.policies import (
    POLICIES,
    BatchPolicy,
    CandidatePolicy,
    Policy,
    RhoLossPolicy,
    UniformPolicy,
    build_policy,
)
from hardmine.state import Int, Stateful
from hardmine.streams.batches import flatten, rows, take, unflatten
from hardmine.streams.reference import Reference, StreamReference
from hardmine.streams.replay import HardReplay
from hardmine.weights import BatchWeights

_RECENT = 64  # batches whose weights are kept for `weights(ids)`


def stream_policy(policy: str | Policy, candidates: int, seed: int) -> Policy:
    """The policy of a stream: a name (built with the stream's `candidates` and `seed` where it takes them) or an
    object; refused when it needs what a stream lacks (a per-sample memory of known N, epochs of warm-up, guards)."""
    if isinstance(policy, str):
        params = inspect.signature(POLICIES.lookup(policy).__init__).parameters
        given = {"candidates": candidates, "seed": seed}
        policy = build_policy(policy, **{k: v for k, v in given.items() if k in params})
    elif not isinstance(policy, Policy):
        raise TypeError(f"policy must be a registered name or a Policy, got {type(policy).__name__}")
    name = policy.name
    if not isinstance(policy, (BatchPolicy, UniformPolicy)):
        raise ValueError(f"policy {name!r} draws from a per-sample memory of known size N, which a stream lacks: "
                         "use online_top_loss, rho_loss, selective_backprop, uniform or another candidate or batch "
                         "policy")
    if isinstance(policy, UniformPolicy) and candidates != 1:
        raise ValueError(f"the uniform policy keeps every sample: candidates must be 1, got {candidates}")
    if isinstance(policy, CandidatePolicy) and policy.candidates != candidates:
        raise ValueError(f"policy {name!r} has candidates={policy.candidates} but the stream candidates="
                         f"{candidates}: build it with the stream's")
    if policy.guards:
        raise ValueError(f"policy {name!r} has guards {[g.name for g in policy.guards]}: guards read a per-sample "
                         "memory over epochs, which a stream lacks")
    if policy.warmup:
        raise ValueError(f"policy {name!r} has warmup={policy.warmup}: a stream has no warm-up epochs (start "
                         "with policy='uniform' and switch streams)")
    return policy


@dataclass
class _Batch:
    ids: np.ndarray  # int64 [C]
    losses: np.ndarray  # float64 [C]
    weights: np.ndarray | None = None  # float64 [C], once decided
    scores: np.ndarray | None = None  # the selection score [C] (loss, or reducible loss), the replay priority
    tensor: torch.Tensor | None = None  # the weights as `weights(ids)` returns them, made at its first call


def _key(ids: Any) -> bytes:
    if type(ids) is torch.Tensor and ids.dtype == torch.int64 and ids.device.type == "cpu" and ids.is_contiguous():
        return ids.numpy().tobytes()
    return np.ascontiguousarray(ids.detach().cpu().numpy() if isinstance(ids, torch.Tensor) else ids,
                                dtype=np.int64).tobytes()


def _plain_losses(values: Any, size: int) -> np.ndarray | None:
    """A float64 copy of `values` when it is a 1-D float CPU tensor (no gradient) or array of `size` finite values
    (one sum decides: a NaN or an infinity makes it non-finite, and so may an overflow, which the full check then
    clears), else None."""
    if type(values) is torch.Tensor:
        if not (values.is_floating_point() and values.ndim == 1 and values.device.type == "cpu"
                and not values.requires_grad and values.numel() == size):
            return None
        values = values.numpy()
    elif not (type(values) is np.ndarray and values.dtype.kind == "f" and values.ndim == 1 and values.size == size):
        return None
    out = values.astype(np.float64)
    return out if math.isfinite(out.sum()) else None


def _valid(weights: np.ndarray) -> torch.Tensor:
    """A new float32 tensor of `weights` (finite, >= 0 by construction), marked so that `hm.reduce` does not check
    them again (as a HardExampleSampler's are)."""
    out = torch.from_numpy(weights.astype(np.float32))
    return BatchWeights.of(out, valid=True, over_size=out / out.numel())


def _cat(first: Any, second: Any) -> Any:
    """The rows of `second` appended to those of `first` (batches of one structure)."""
    a, spec = flatten(first)
    b, _ = flatten(second)
    return unflatten([torch.cat([x, y.to(x.device)]) for x, y in zip(a, b)], spec)


class StreamSelection(Stateful):
    """The policy, the reference (rho_loss) and the replay buffer of a stream, and the weights of its recent
    batches. See HardStream for the three calls. Its state: the number of selections, the policy's and the replay
    buffer's (None without one), loaded in one validate-then-assign step with its stream's."""

    state_version = 2
    state_fields = {"steps": Int(0)}
    state_children = {"policy": "policy", "replay": "replay"}
    config_exclude = ("policy", "reference", "replay")  # objects: the children carry their names and arguments

    def __init__(self, policy: str | Policy, candidates: int, reference: Reference | None,
                 replay: HardReplay | None, seed: int) -> None:
        self.policy = stream_policy(policy, candidates, seed)
        self.candidates, self.seed, self.reference = candidates, seed, reference
        if isinstance(self.policy, RhoLossPolicy):
            if reference is None:
                raise ValueError("rho_loss needs reference=: a reference model (nn.Module, scored on each candidate "
                                 "batch) or a callable batch -> irreducible losses [C]")
            self._reference: StreamReference | None = StreamReference(reference)
            self.policy.attach(self._reference)  # its `score` reads the batch's irreducible losses from it
        elif reference is not None:
            raise ValueError(f"reference= is used by rho_loss only, not by policy {self.policy.name!r}")
        else:
            self._reference = None
        if replay is not None and not isinstance(replay, HardReplay):
            raise TypeError(f"replay must be a HardReplay or None, got {type(replay).__name__}")
        if replay is not None and isinstance(self.policy, UniformPolicy):
            raise ValueError("the uniform policy promises an unbiased mean loss, which a replay buffer breaks (a "
                             "sample's replays depend on its loss): use replay with online_top_loss, rho_loss or "
                             "selective_backprop")
        self.replay = replay
        self._batches: OrderedDict[bytes, _Batch] = OrderedDict()
        self._selected: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self._steps = 0
        self._ones: dict[int, tuple[np.ndarray, torch.Tensor]] = {}

    def _state_owner(self) -> str:
        return "HardStream selection"

    def _after_load(self) -> None:
        self._batches.clear()  # the recent batches' weights belong to the run that saved the state
        self._selected.clear()

    def record(self, ids: np.ndarray, per_sample_loss: Any, key: bytes | None = None) -> None:
        """Check and keep the losses [C] of candidate batch `ids` [C]; decide its weights now unless the policy
        scores a reference on the batch (then `select` decides)."""
        losses = _plain_losses(per_sample_loss, ids.size)
        if losses is None:  # not a finite float CPU tensor or array of C: checked value by value, named
            losses = check_values("per_sample_loss", per_sample_loss, ids.size, indices=ids).copy()
        batch = _Batch(ids, losses)
        if self._reference is None:
            self._decide(batch, None)
        self._remember(self._batches, ids.tobytes() if key is None else key, batch)

    def _decide(self, batch: _Batch, data: Any) -> None:
        scores = batch.losses
        if self._reference is not None:
            scores = batch.losses - self._reference.score(batch.ids, data)
        if isinstance(self.policy, BatchPolicy):
            batch.weights = np.asarray(self.policy.guarded_select(batch.losses, batch.ids), dtype=np.float64)
        else:  # uniform: ones, one read-only array and tensor per batch size
            size = batch.ids.size
            if size not in self._ones:
                ones = np.ones(size)
                ones.flags.writeable = False
                self._ones[size] = (ones, _valid(ones))
            batch.weights, batch.tensor = self._ones[size]
        batch.scores = scores

    @staticmethod
    def _remember(store: OrderedDict, key: bytes, value: Any) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > _RECENT:
            store.popitem(last=False)

    def _batch(self, ids: Any) -> _Batch:
        found = self._batches.get(_key(ids))
        if found is None:
            raise ValueError("ids are not a candidate batch given to update() lately: call update(ids, "
                             "per_sample_loss) with the ids and losses of the whole candidate batch first")
        return found

    def select(self, ids: Any, batch: Any) -> tuple[torch.Tensor, Any]:
        """(ids [b + r], batch) to back-propagate: the kept candidates of the batch `ids` (in order), then the
        replayed samples."""
        record = self._batch(ids)
        if rows(batch) != record.ids.size:
            raise ValueError(f"batch has {rows(batch)} samples but ids has {record.ids.size}")
        if self.replay is not None:
            self.replay.check_batch(batch)
        if record.weights is None:
            self._decide(record, batch)
        kept = np.flatnonzero(record.weights > 0)
        fresh = record.weights[kept] / record.weights[kept].mean()
        out_ids, out = record.ids[kept], take(batch, kept)
        weights = fresh
        if self.replay is not None:
            count = self.replay.replay_count(kept.size)
            if count:
                replay_ids, replayed = self.replay.draw(count, self._steps)
                out_ids, out = np.concatenate([out_ids, replay_ids]), _cat(out, replayed)
            weights = np.concatenate([fresh, np.ones(count)])
            self.replay.offer(record.ids, batch, record.scores, self._steps)
        self._steps += 1
        self._remember(self._selected, out_ids.tobytes(), _valid(weights))
        return torch.from_numpy(out_ids), out

    def weights(self, ids: Any) -> torch.Tensor:
        """Weights (float32 [len(ids)]) of a batch `select` returned, or of a whole candidate batch (the policy's:
        0 for a dropped candidate). The tensor may be shared with later calls: do not change it in place (as a
        HardExampleSampler's weights)."""
        key = _key(ids)
        if key in self._selected:
            return self._selected[key]
        record = self._batch(ids)
        if record.weights is None:
            raise ValueError(f"policy {self.policy.name!r} scores its reference on the batch: call "
                             "select(ids, batch) before weights")
        if record.tensor is None:
            record.tensor = _valid(record.weights)
        return record.tensor


def check_ids(ids: Any) -> np.ndarray:
    """Stream ids as a 1-D int64 array (a copy), checked."""
    return check_indices("ids", ids, 2**62).copy()
