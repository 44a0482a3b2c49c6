"""Per-query lists of corpus ids (positives, exclusions) in compressed row form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class IdLists:
    """Row q holds `ids[offsets[q]:offsets[q + 1]]`; offsets is int64 [Q + 1], ids int64 [nnz]."""

    offsets: np.ndarray
    ids: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        """Number of ids per row, int64 [Q]."""
        return np.diff(self.offsets)

    def row(self, q: int) -> np.ndarray:
        return self.ids[self.offsets[q]:self.offsets[q + 1]]

    def block_pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(row relative to `start`, id) pairs of rows [start, stop), both int64."""
        lo, hi = self.offsets[start], self.offsets[stop]
        rows = np.repeat(np.arange(stop - start, dtype=np.int64), self.counts[start:stop])
        return rows, self.ids[lo:hi]

    @staticmethod
    def union(a: IdLists, b: IdLists) -> IdLists:
        """Row-wise concatenation of two lists with the same number of rows (duplicates are kept)."""
        counts = a.counts + b.counts
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        owners = np.arange(len(counts))
        rows = np.concatenate([np.repeat(owners, a.counts), np.repeat(owners, b.counts)])
        ids = np.concatenate([a.ids, b.ids])
        order = np.argsort(rows, kind="stable")
        return IdLists(offsets, ids[order])


def to_id_lists(name: str, value: Any, num_rows: int, num_ids: int) -> IdLists:
    """Read per-query corpus ids, checking each against [0, num_ids).

    Accepted forms: a sequence of `num_rows` items, each an int or a sequence of ints (lists may be empty);
    a 1-D integer array [num_rows] (one id per row); a 2-D integer array [num_rows, m] where -1 marks padding.
    """
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return _from_array(name, value, num_rows, num_ids)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be a list of id lists or an integer array, got {type(value).__name__}")
    if len(value) != num_rows:
        raise ValueError(f"{name} has {len(value)} entries but there are {num_rows} queries")
    counts = np.zeros(num_rows, dtype=np.int64)
    flat: list[Any] = []
    for q, item in enumerate(value):
        if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
            flat.append(item)
            counts[q] = 1
            continue
        arr = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
        if arr.size and (arr.dtype.kind not in "iu" or arr.ndim != 1):
            raise TypeError(f"{name}[{q}] must be an int or a 1-D list of ints, got {item!r}")
        flat.extend(arr.reshape(-1).tolist())
        counts[q] = arr.size
    ids = np.asarray(flat, dtype=np.int64)
    offsets = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    _check_range(name, ids, offsets, num_ids)
    return IdLists(offsets, ids)


def _from_array(name: str, arr: np.ndarray, num_rows: int, num_ids: int) -> IdLists:
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or arr.shape[0] != num_rows:
        raise ValueError(f"{name} must have shape [{num_rows}] or [{num_rows}, m], got {tuple(arr.shape)}")
    arr = arr.astype(np.int64, copy=False).reshape(num_rows, -1)
    keep = arr != -1
    offsets = np.zeros(num_rows + 1, dtype=np.int64)
    np.cumsum(keep.sum(axis=1), out=offsets[1:])
    ids = arr[keep]
    _check_range(name, ids, offsets, num_ids)
    return IdLists(offsets, ids)


def _check_range(name: str, ids: np.ndarray, offsets: np.ndarray, num_ids: int) -> None:
    bad = (ids < 0) | (ids >= num_ids)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        row = int(np.searchsorted(offsets, pos, side="right") - 1)
        raise ValueError(f"{name}[{row}] contains id {ids[pos]}, out of range [0, {num_ids}) for the corpus")
