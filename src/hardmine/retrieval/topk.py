"""Exact merging of partial top-k lists: the step that lets corpus blocks, and ranks, be searched apart."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def empty_topk(rows: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A top-k list with no entries: scores -inf (float32 [rows, k]) and ids -1 (int64 [rows, k])."""
    return np.full((rows, k), -np.inf, dtype=np.float32), np.full((rows, k), -1, dtype=np.int64)


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge row-aligned (scores [B, k_i], ids [B, k_i]) lists into the best `k` per row.

    Order: score descending, ties by lower id; entries with id -1 are padding and sort last. The result has
    exactly `k` columns, padded with (-inf, -1). Each part must already hold its own top entries, so that the
    merged list equals the top-k of the union of the underlying candidates.
    """
    scores = np.concatenate([np.asarray(p[0], dtype=np.float32) for p in parts], axis=1)
    ids = np.concatenate([np.asarray(p[1], dtype=np.int64) for p in parts], axis=1)
    scores = np.where(ids < 0, np.float32(-np.inf), scores)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    scores = np.take_along_axis(scores, order, axis=1)
    ids = np.take_along_axis(ids, order, axis=1)
    ids[~np.isfinite(scores) & (scores < 0)] = -1
    if ids.shape[1] < k:
        pad_s, pad_i = empty_topk(ids.shape[0], k - ids.shape[1])
        scores, ids = np.concatenate([scores, pad_s], axis=1), np.concatenate([ids, pad_i], axis=1)
    return scores, ids
