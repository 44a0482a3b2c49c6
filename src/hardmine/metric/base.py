"""BaseMiner: validates the inputs at the public boundary (errors name the argument and the value), lists each
anchor's positives once, hands the concrete miner's public `mine(batch)` a `MiningBatch` to mine block by block,
and checks what it returns (`check_mined`), as pytorch-metric-learning's `output_assertion` does."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from hardmine._checks import check_int
from hardmine.metric import _ops
from hardmine.metric._batch import Block, Indices, MiningBatch, safe_padding
from hardmine.metric.distances import DEFAULT_MAX_BYTES, BaseDistance, EuclideanDistance, as_distance
from hardmine.registry import Registered, Registry

MINERS = Registry("miner")
"""Short names of the miners: `MINERS["batch_hard"](margin=0.2)`; a miner registers by subclassing `BaseMiner`
with a class attribute `name = "..."`."""

PositiveMask = torch.Tensor | Callable[[Any, Any], torch.Tensor]
__all__ = ["BaseMiner", "Block", "Indices", "MiningBatch", "PositiveMask", "as_torch_generator", "check_mined"]


def as_torch_generator(seed: int | torch.Generator | None) -> torch.Generator:
    """A CPU torch.Generator from a seed, an existing generator (used as is) or None (fresh OS entropy)."""
    if isinstance(seed, torch.Generator):
        return seed
    generator = torch.Generator()
    if seed is None:
        generator.seed()
        return generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, a torch.Generator or None, got {seed!r}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return generator.manual_seed(int(seed))


def _check_embeddings(name: str, x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [batch, dim], got shape {tuple(x.shape)}")
    x = x.detach()
    if not math.isfinite(x.sum()) and not torch.isfinite(x).all():
        bad = ~torch.isfinite(x).all(1)
        rows = torch.nonzero(bad).flatten()
        raise ValueError(f"{name} has non-finite values (NaN or inf) in {rows.numel()} row(s), "
                         f"e.g. rows {rows[:10].tolist()}")
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _check_labels(name: str, labels: Any, rows: int, rows_name: str, device: torch.device,
                  integer_1d: bool) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        try:
            labels = torch.as_tensor(np.asarray(labels))
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be a tensor or array of labels, got {type(labels).__name__}") from None
    if integer_1d:
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise TypeError(f"{name} must hold integers (int64 preferred), got dtype {labels.dtype}")
        if labels.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(labels.shape)}")
    if labels.ndim == 0 or labels.shape[0] != rows:
        length = labels.shape[0] if labels.ndim else "a scalar"
        raise ValueError(f"{name} has length {length} but {rows_name} has {rows} rows")
    if labels.device == device and (labels.dtype == torch.int64 or not integer_1d):
        return labels  # (already as needed: skips a dispatch per call)
    return labels.to(device=device, dtype=torch.int64) if integer_1d else labels.to(device)


def _check_distance_range(query: torch.Tensor, ref: torch.Tensor, distance: BaseDistance, name: str) -> None:
    """Refuse embeddings whose (squared) distances or dot products could overflow the dtype: every value the
    matrix product forms is at most (|x| + |y|)^2 (squared L2) or |x| |y| (dot), with 64x headroom. Rows the
    distance normalises have norm 1 and cannot overflow: they are not read (no host synchronisation)."""
    if query.numel() == 0 or ref.numel() == 0 or distance.normalize:
        return
    nq, nr = torch.stack([query.norm(dim=1).max(), ref.norm(dim=1).max()]).tolist()  # one device read
    bound = nq * nr if distance.is_similarity else (nq + nr) ** 2
    limit = torch.finfo(query.dtype).max / 64
    if not bound <= limit:
        raise ValueError(f"{name} have rows of L2 norm up to {max(nq, nr):.3g}: {type(distance).__name__} values "
                         f"up to {bound:.3g} exceed what {query.dtype} holds safely ({limit:.3g}); normalise the "
                         "embeddings (normalize=True) or scale them down")


def _resolve_mask(mask: PositiveMask, labels: Any, ref_labels: Any, shape: tuple[int, int],
                  device: torch.device) -> torch.Tensor:
    value = mask(labels, ref_labels) if callable(mask) else mask
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"positive_mask must be a boolean tensor or return one, got {type(value).__name__}")
    if value.dtype != torch.bool:
        raise TypeError(f"positive_mask must be a boolean tensor, got dtype {value.dtype}")
    if tuple(value.shape) != shape:
        raise ValueError(f"positive_mask must have shape {shape} (batch x reference), got {tuple(value.shape)}")
    return value.to(device)


def check_mined(out: Any, arity: int, num_query: int, num_ref: int, name: str = "mine",
                ranges: bool = True) -> Indices:
    """A miner's output as a tuple of int64 tensors, checked as pytorch-metric-learning's `output_assertion` does:
    `arity` 1-D integer tensors (3: (anchor, positive, negative) of one length; 4: (anchor1, positive) and
    (anchor2, negative), each pair of one length); with `ranges`, anchors in [0, num_query) and the others in
    [0, num_ref), read on the host for CPU tensors (O(output)) and a device-side assert on an accelerator.
    ValueError naming `name` and the first problem otherwise."""
    if not isinstance(out, (tuple, list)) or len(out) != arity:
        raise ValueError(f"{name} must return a tuple of {arity} index tensors, got "
                         f"{type(out).__name__}{f' of {len(out)}' if isinstance(out, (tuple, list)) else ''}")
    tensors = []
    for i, t in enumerate(out):
        if not isinstance(t, torch.Tensor) or t.dtype.is_floating_point or t.dtype == torch.bool \
                or t.is_complex() or t.ndim != 1:
            what = f"{t.dtype} of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{name} output[{i}] must be a 1-D integer tensor, got {what}")
        tensors.append(t if t.dtype == torch.int64 else t.to(torch.int64))
    groups = ((0, 1), (2, 3)) if arity == 4 else ((0, 1, 2),)  # pairs: (a1, p) and (a2, n)
    for group in groups:
        if len({tensors[i].shape[0] for i in group}) != 1:
            raise ValueError(f"{name} returned index tensors {list(group)} of different lengths "
                             f"{[tensors[i].shape[0] for i in group]}")
    if not ranges:
        return tuple(tensors)
    anchors = (0, 2) if arity == 4 else (0,)
    for i, t in enumerate(tensors):
        size = num_query if i in anchors else num_ref
        if not t.numel():
            continue
        role = "an anchor (a row of embeddings)" if i in anchors else "a row of the reference"
        if t.device.type != "cpu":
            torch._assert_async(((t >= 0) & (t < size)).all(), f"{name} output[{i}] out of range [0, {size})")
            continue
        bad = (t < 0) | (t >= size)
        if bool(bad.any()):
            raise ValueError(f"{name} output[{i}] must index {role} in [0, {size}): {int(bad.sum())} do not, "
                             f"e.g. {int(t[bad][0])}")
    return tuple(tensors)


_RENAMED = (("_mine", "mine"), ("_arity", "arity"), ("_bytes_per_pair", "bytes_per_pair"))


class BaseMiner(Registered):
    """Base of every miner: `miner(embeddings, labels, ref_emb=None, ref_labels=None)` -> int64 index tuple.

    distance: a `hardmine.metric.distances` object or an equal pytorch-metric-learning one (LpDistance,
        CosineSimilarity, DotProductSimilarity; converted once); default: Euclidean on L2-normalised embeddings.
    positive_mask: None (positives share a label), a [B, M] boolean tensor, or a callable
        `(labels, ref_labels) -> [B, M] bool` (multi-label or custom positives). Negatives are all other pairs
        except an embedding with itself.
    max_block_bytes: working-memory budget in bytes; anchors are processed in row blocks that fit it.

    After each call, for logging as PML's miners: `num_triplets` (triplets returned, 0 for pair miners),
    `num_pos_pairs` / `num_neg_pairs` (pairs returned by pair miners; distinct (anchor, positive) / (anchor,
    negative) pairs within the triplets of triplet miners).

    A miner subclasses BaseMiner and writes `mine(batch)`: a `MiningBatch` (validated inputs, positives listed
    per anchor, `batch.blocks(bytes_per_pair)` for row blocks of distances) -> `arity` int64 index tensors. It sets
    `arity` (3: triplets, 4: pairs) and `bytes_per_pair`, its working memory per matrix entry. What `mine`
    returns is checked (`check_mined`: count, dtype, equal lengths; index ranges for a `mine` written outside
    hardmine, whose built-in miners are proved by `hardmine.testing.check_miner` instead, so that their hot path
    reads nothing back from an accelerator). `_mine`, `_arity` and `_bytes_per_pair` still work for a release,
    with a DeprecationWarning.
    """

    registry = MINERS
    arity: ClassVar[int] = 3
    bytes_per_pair: ClassVar[int] = 8
    _checks_ranges: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for old, new in _RENAMED:
            if old in vars(cls) and new not in vars(cls):
                warnings.warn(f"{cls.__qualname__}.{old} is deprecated: name it {new} (BaseMiner's public hook); "
                              f"{old} stops working in the next release", DeprecationWarning, stacklevel=2)
                setattr(cls, new, vars(cls)[old])
        cls._checks_ranges = not getattr(cls.mine, "__module__", "").startswith("hardmine.")

    def __init__(self, distance: BaseDistance | None = None, positive_mask: PositiveMask | None = None,
                 max_block_bytes: int = DEFAULT_MAX_BYTES) -> None:
        distance = self.default_distance() if distance is None else as_distance("distance", distance)
        if positive_mask is not None and not (callable(positive_mask) or isinstance(positive_mask, torch.Tensor)):
            raise TypeError(f"positive_mask must be None, a boolean tensor or a callable, got {positive_mask!r}")
        self.distance = distance
        self.positive_mask = positive_mask
        self.max_block_bytes = check_int("max_block_bytes", max_block_bytes)
        self._last: tuple[Indices, int] | None = None  # the last output and its reference size, for the counters

    def default_distance(self) -> BaseDistance:
        """The distance used when none is given: Euclidean on L2-normalised embeddings (PML's default)."""
        return EuclideanDistance(normalize=True)

    def __call__(self, embeddings: torch.Tensor, labels: Any = None, ref_emb: torch.Tensor | None = None,
                 ref_labels: Any = None, *, positive_mask: PositiveMask | None = None,
                 ref_starts_with_batch: bool = False) -> Indices:
        """Mine `embeddings` [B, D] against themselves, or against `ref_emb` [M, D] when given.

        labels: [B] integer labels (any [B, ...] labels with a callable positive_mask; may be None with a
            tensor positive_mask). ref_labels: the labels of `ref_emb`.
        positive_mask: overrides the miner's own for this call.
        ref_starts_with_batch: the first B rows of `ref_emb` are `embeddings` themselves (as a cross-batch
            memory lays them out); those self pairs are then excluded, as they are when `ref_emb` is None.
        Returns (anchor, positive, negative) or (anchor1, positive, anchor2, negative), int64, indexing
        `embeddings` (anchors) and the reference (positives, negatives).
        """
        batch = self.validate(embeddings, labels, ref_emb, ref_labels, positive_mask, ref_starts_with_batch)
        if batch.num_query == 0 or batch.num_ref == 0:
            out = batch.empty(self.arity)
        else:
            with torch.no_grad():
                out = check_mined(self.mine(batch), self.arity, batch.num_query, batch.num_ref,
                                  f"{type(self).__name__}.mine", self._checks_ranges)
        self._count(out, batch.num_ref)
        return out

    def _count(self, out: Indices, num_ref: int) -> None:
        self._last = (out, num_ref)  # counted when read, so that mining itself waits for no device value

    @property
    def num_triplets(self) -> int:
        """Triplets the last call returned (0 for pair miners and before any call)."""
        return len(self._last[0][0]) if self._last is not None and len(self._last[0]) == 3 else 0

    @property
    def num_pos_pairs(self) -> int:
        """Positive pairs of the last call: returned pairs, or distinct (anchor, positive) pairs of its triplets."""
        return self._distinct_pairs(1)

    @property
    def num_neg_pairs(self) -> int:
        """Negative pairs of the last call: returned pairs, or distinct (anchor, negative) pairs of its triplets."""
        return self._distinct_pairs(2)

    def _distinct_pairs(self, column: int) -> int:
        if self._last is None:
            return 0
        out, num_ref = self._last
        if len(out) == 4:
            return len(out[0] if column == 1 else out[2])
        a, other = out[0], out[column]
        return int(torch.unique(a * num_ref + other).numel()) if len(a) else 0

    def validate(self, embeddings: Any, labels: Any, ref_emb: Any, ref_labels: Any,
                 positive_mask: PositiveMask | None = None, ref_starts_with_batch: bool = False) -> MiningBatch:
        """Check the inputs (errors name the argument and the value) and build the batch's positive pairs."""
        x = _check_embeddings("embeddings", embeddings)
        mask = self.positive_mask if positive_mask is None else positive_mask
        if ref_emb is None:
            if ref_labels is not None:
                raise ValueError("ref_labels was given without ref_emb")
            if ref_starts_with_batch:
                raise ValueError("ref_starts_with_batch=True needs ref_emb")
            y = x
        else:
            y = _check_embeddings("ref_emb", ref_emb).to(x.device, x.dtype)
            if y.shape[1] != x.shape[1]:
                raise ValueError(f"ref_emb has dim {y.shape[1]} but embeddings has dim {x.shape[1]}")
            if ref_starts_with_batch and y.shape[0] < x.shape[0]:
                raise ValueError(f"ref_starts_with_batch=True but ref_emb has {y.shape[0]} rows, fewer than "
                                 f"the {x.shape[0]} embeddings")
        fixed_mask = isinstance(mask, torch.Tensor)
        if labels is not None or not fixed_mask:
            if labels is None:
                raise ValueError("labels is None: labels are needed unless positive_mask is a tensor")
            labels = _check_labels("labels", labels, x.shape[0], "embeddings", x.device, mask is None)
        if ref_emb is None:
            ref_labels = labels
        elif ref_labels is not None or not fixed_mask:
            if ref_labels is None:
                raise ValueError("ref_emb was given without ref_labels")
            ref_labels = _check_labels("ref_labels", ref_labels, y.shape[0], "ref_emb", x.device, mask is None)
        exclude_self = ref_emb is None or ref_starts_with_batch
        if ref_starts_with_batch and labels is not None and ref_labels is not None:
            head = ref_labels[: x.shape[0]]
            if head.shape != labels.shape or not torch.equal(head, labels.to(head.dtype)):
                raise ValueError("ref_starts_with_batch=True but ref_labels does not start with labels")
        query = self.distance.prepare(x)
        ref = query if ref_emb is None else self.distance.prepare(y)
        _check_distance_range(query, ref, self.distance, "embeddings" if ref_emb is None else "embeddings and ref_emb")
        if mask is None:
            positives = functools.partial(_ops.label_positives, labels, ref_labels, exclude_self)
            self_labels = labels if ref_emb is None else None
            return MiningBatch(query, ref, exclude_self, self.distance, self.max_block_bytes, positives, self_labels,
                               self_listed=exclude_self)  # a row's own column carries its own label
        given = _resolve_mask(mask, labels, ref_labels, (x.shape[0], y.shape[0]), x.device)
        if exclude_self:
            given = given.clone()
            given.diagonal().fill_(False)
        row, col = torch.nonzero(given).unbind(1)
        cols, valid = _ops.padded_by_row(row, col, x.shape[0])
        cols = safe_padding(cols, valid, exclude_self)
        return MiningBatch(query, ref, exclude_self, self.distance, self.max_block_bytes, lambda: (cols, valid))

    def mine(self, batch: MiningBatch) -> Indices:
        """The hook a miner writes: the index tuple of `batch` (anchors index `batch`'s rows, the rest its
        reference), `arity` int64 tensors; called without gradient, checked by `check_mined`."""
        raise NotImplementedError(f"{type(self).__name__} must implement mine(batch)")
