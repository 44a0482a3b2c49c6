"""Choosing `n` negatives among the kept candidates: the top ones, or a seeded uniform sample.

Random choices come from a hash of (key, query id, corpus id), so they do not depend on batch sizes, backends or
how the corpus is split across ranks.
"""

from __future__ import annotations

import numpy as np

SAMPLINGS = ("top", "random")
_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash_keys(key: int, query_ids: np.ndarray, corpus_ids: np.ndarray) -> np.ndarray:
    """Pseudo-random uint64 [B, K] for query ids [B] and corpus ids [B, K] under a 64-bit `key`."""
    base = _splitmix64(np.asarray(query_ids, dtype=np.int64).astype(np.uint64) ^ np.uint64(key))
    return _splitmix64(base[:, None] ^ corpus_ids.astype(np.uint64))


def choose(kept: np.ndarray, n: int, sampling: str, key: int, query_ids: np.ndarray,
           corpus_ids: np.ndarray) -> np.ndarray:
    """Column positions [B, n] of the chosen candidates in each row's score order, -1 where fewer were kept.

    kept bool [B, K]; query_ids int64 [B]; corpus_ids int64 [B, K].
    """
    if sampling == "random":
        keys = np.where(kept, hash_keys(key, query_ids, corpus_ids), np.uint64(np.iinfo(np.uint64).max))
        order = np.argsort(keys, axis=1, kind="stable")[:, :n]
        picked = np.zeros_like(kept)
        np.put_along_axis(picked, order, True, axis=1)
        kept = kept & picked
    chosen = kept & (np.cumsum(kept, axis=1) <= n)
    cols = np.argsort(~chosen, axis=1, kind="stable")[:, :n]
    count = chosen.sum(axis=1)
    if cols.shape[1] < n:
        cols = np.concatenate([cols, np.zeros((len(cols), n - cols.shape[1]), dtype=cols.dtype)], axis=1)
    return np.where(np.arange(n)[None, :] < count[:, None], cols, -1).astype(np.int64)
