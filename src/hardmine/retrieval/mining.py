"""mine_hard_negatives: blocked nearest-neighbour search, positive/exclusion removal, filters, sampling."""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from hardmine._checks import as_generator, check_int, check_number
from hardmine.retrieval.backends import Block, ExactSearch, SearchBackend, make_backend
from hardmine.retrieval.distributed import (
    Shard,
    corpus_shard,
    merge_across_ranks,
    raise_if_any_failed,
    reduce_across_ranks,
)
from hardmine.retrieval.embeddings import Embeddings, as_embedding_matrix
from hardmine.retrieval.filters import CandidateFilters
from hardmine.retrieval.idlists import IdLists, to_id_lists
from hardmine.retrieval.result import MinedNegatives
from hardmine.retrieval.sampling import SAMPLINGS, choose

METRICS = ("cosine", "dot")


def mine_hard_negatives(
    query_emb: Any,
    corpus_emb: Any,
    positives: Any,
    num_negatives: int = 5,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    sampling: str = "top",
    index: str | SearchBackend = "exact",
    metric: str = "cosine",
    exclude: Any = None,
    seed: int | np.random.Generator | None = 0,
    batch_size: int = 1024,
    progress: bool = True,
    recall_sample: int = 256,
    corpus_sharded: bool = False,
    group: Any = None,
) -> MinedNegatives:
    """Mine `num_negatives` hard negatives per query from a corpus, never holding a full [Q, C] score matrix.

    query_emb [Q, d], corpus_emb [C, d]: numpy arrays or torch tensors, float32/float16 (float64 is read too).
    positives: per query, the corpus ids that answer it (a list of int lists, a 1-D int array [Q], or a 2-D int
    array [Q, m] padded with -1); never returned. exclude: known-related ids in the same forms; never returned.
    Candidates are ranked by similarity (cosine, or dot for metric="dot") with positives and excluded ids
    removed; ranks [range_min, range_max) form the window (default range_max = range_min + 10 * num_negatives).
    Filters then drop candidates scoring above max_score, below min_score, above p - absolute_margin or above
    p - |p| * relative_margin, where p is the query's lowest positive score. sampling "top" keeps the best
    survivors, "random" a uniform sample of them seeded by `seed`. Queries short of survivors are padded with -1.

    index: "exact", "ivf", "hnsw" or a configured SearchBackend; approximate searches state their recall against
    exact search on `recall_sample` queries (0 turns that off). batch_size: queries per block; memory is
    O(batch_size x (corpus block + k)), whatever the corpus size.
    Distributed (torch.distributed initialised, world > 1): every rank passes the same queries; with
    corpus_sharded=False every rank holds the whole corpus and searches 1/world of it; with corpus_sharded=True
    corpus_emb is this rank's shard and global ids follow rank order. All ranks return the same result.
    """
    num_negatives = check_int("num_negatives", num_negatives)
    range_min = check_int("range_min", range_min, minimum=0)
    batch_size = check_int("batch_size", batch_size)
    recall_sample = check_int("recall_sample", recall_sample, minimum=0)
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    filters = _filters(num_negatives, range_min, range_max, max_score, min_score, absolute_margin, relative_margin)
    rng = as_generator(seed)
    key = int(seed) % 2**64 if isinstance(seed, (int, np.integer)) else int(rng.integers(2**63))
    backend = make_backend(index, seed=key % 2**31)
    cosine = metric == "cosine"

    queries = Embeddings("query_emb", query_emb, cosine)
    corpus, shard = _local_corpus(corpus_emb, cosine, corpus_sharded, group)
    if queries.shape[1] != corpus.shape[1]:
        raise ValueError(f"query_emb has dimension {queries.shape[1]} but corpus_emb has {corpus.shape[1]}")
    num_queries, total = len(queries), shard.global_size
    pos = to_id_lists("positives", positives, num_queries, total)
    removed = pos if exclude is None else IdLists.union(pos, to_id_lists("exclude", exclude, num_queries, total))
    if filters.uses_positive and (pos.counts == 0).any():
        q = int(np.flatnonzero(pos.counts == 0)[0])
        raise ValueError(f"positives[{q}] is empty: a margin needs at least one positive per query")
    window_end = min(filters.range_max, total)
    blocks: list[Block] = []
    for start in range(0, num_queries, batch_size):
        stop = min(start + batch_size, num_queries)
        blocks.append((start, stop, min(window_end + int(removed.counts[start:stop].max(initial=0)), total)))

    positive_min = _lowest_positive_scores(queries, corpus, pos, shard, batch_size)
    found = _search(backend, queries, corpus, blocks, shard, progress)
    recall = _recall(backend, found, queries, corpus, blocks, shard, recall_sample, key) if backend.approximate \
        else None

    indices = np.full((num_queries, num_negatives), -1, dtype=np.int64)
    scores = np.full((num_queries, num_negatives), np.nan, dtype=np.float32)
    candidates = np.zeros(num_queries, dtype=np.int64)
    dropped = {name: np.zeros(num_queries, dtype=np.int64) for name in filters.active}
    for (start, stop, _), (s, ids) in zip(blocks, found):
        rows, excluded_ids = removed.block_pairs(start, stop)
        usable = (ids >= 0) & ~np.isin(_pair_keys(np.arange(stop - start)[:, None], ids, total),
                                       _pair_keys(rows, excluded_ids, total))
        kept, candidates[start:stop], block_dropped = filters.apply(s, usable, positive_min[start:stop])
        for name, counts in block_dropped.items():
            dropped[name][start:stop] = counts
        cols = choose(kept, num_negatives, sampling, key, np.arange(start, stop), ids)
        ok = cols >= 0
        safe = np.where(ok, cols, 0)
        indices[start:stop] = np.where(ok, np.take_along_axis(ids, safe, axis=1), -1)
        scores[start:stop] = np.where(ok, np.take_along_axis(s, safe, axis=1), np.nan)
    return MinedNegatives(indices, scores, positive_min, candidates, dropped, pos, search=backend.name,
                          search_recall=recall, recall_k=min(b[2] for b in blocks) if recall is not None else None,
                          metric=metric)


def _filters(num_negatives: int, range_min: int, range_max: int | None, max_score: float | None,
             min_score: float | None, absolute_margin: float | None,
             relative_margin: float | None) -> CandidateFilters:
    range_max = range_min + 10 * num_negatives if range_max is None else check_int("range_max", range_max)
    if range_max <= range_min:
        raise ValueError(f"range_max must be > range_min = {range_min}, got {range_max}")
    if num_negatives > range_max - range_min:
        raise ValueError(f"num_negatives = {num_negatives} cannot fit the rank window [{range_min}, {range_max}): "
                         "widen range_max or ask fewer negatives")
    values = {}
    for name, value in (("max_score", max_score), ("min_score", min_score), ("absolute_margin", absolute_margin)):
        if value is not None:
            values[name] = check_number(name, value)
    if relative_margin is not None:
        values["relative_margin"] = check_number("relative_margin", relative_margin, 0.0, 1.0)
    if max_score is not None and min_score is not None and min_score > max_score:
        raise ValueError(f"min_score = {min_score} is above max_score = {max_score}: no candidate could pass")
    return CandidateFilters(range_min, range_max, **values)


def _local_corpus(corpus_emb: Any, cosine: bool, corpus_sharded: bool, group: Any) -> tuple[Embeddings, Shard]:
    """This rank's part of the corpus, checked; a failure on any rank is raised on every rank."""
    matrix, error = None, None
    try:
        matrix = as_embedding_matrix("corpus_emb", corpus_emb)
    except (TypeError, ValueError) as err:
        error = err
    shard = corpus_shard(0 if matrix is None else len(matrix), corpus_sharded, group)
    corpus = None
    if error is None:
        try:
            corpus = Embeddings("corpus_emb", matrix[shard.start:shard.stop], cosine)
        except ValueError as err:
            error = err
    raise_if_any_failed(error, shard)
    return corpus, shard


def _pair_keys(rows: np.ndarray, ids: np.ndarray, total: int) -> np.ndarray:
    """One int64 key per (row, corpus id) pair, for set membership tests."""
    return rows.astype(np.int64) * (total + 1) + ids


def _lowest_positive_scores(queries: Embeddings, corpus: Embeddings, pos: IdLists, shard: Shard,
                            batch_size: int) -> np.ndarray:
    """Per query, the lowest score among its positives held by any rank: float32 [Q], NaN when it has none."""
    lowest = np.full(len(queries), np.inf)
    for start in range(0, len(queries), batch_size):
        stop = min(start + batch_size, len(queries))
        rows, ids = pos.block_pairs(start, stop)
        local = (ids >= shard.offset) & (ids < shard.offset + len(corpus))
        rows, ids = rows[local], ids[local] - shard.offset
        if rows.size:
            q = queries.block(start, stop)
            s = np.einsum("ij,ij->i", q[rows], corpus.rows(ids)).astype(np.float64)
            np.minimum.at(lowest, rows + start, s)
    lowest = reduce_across_ranks(lowest, "min", shard)
    return np.where(np.isfinite(lowest), lowest, np.nan).astype(np.float32)


def _search(backend: SearchBackend, queries: Embeddings, corpus: Embeddings, blocks: list[Block], shard: Shard,
            progress: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    found = backend.search(queries, corpus, blocks, progress=progress and shard.rank == 0)
    merged = []
    for (_, _, k), (s, ids) in tqdm(list(zip(blocks, found)), desc="merge", disable=not (progress and
                                                                                           shard.distributed)):
        ids = np.where(ids >= 0, ids + shard.offset, -1)
        merged.append(merge_across_ranks(s, ids, k, shard))
    return merged


def _recall(backend: SearchBackend, found: list[tuple[np.ndarray, np.ndarray]], queries: Embeddings,
            corpus: Embeddings, blocks: list[Block], shard: Shard, sample: int, key: int) -> float | None:
    """Recall@k of the approximate lists against exact search on a seeded sample of queries (k: the smallest
    block k), computed on every rank alike."""
    if sample == 0:
        return None
    k = min(b[2] for b in blocks)
    rows = np.sort(np.random.default_rng(key).choice(len(queries), min(sample, len(queries)), replace=False))
    approx = np.concatenate([ids[:, :k] for _, ids in found])[rows]
    subset = Embeddings("query_emb", queries.rows(rows), cosine=False)
    (_, exact), = _search(ExactSearch(), subset, corpus, [(0, len(rows), k)], shard, progress=False)
    hits = [np.intersect1d(a[a >= 0], e[e >= 0]).size / max(1, (e >= 0).sum()) for a, e in zip(approx, exact)]
    return float(np.mean(hits))
