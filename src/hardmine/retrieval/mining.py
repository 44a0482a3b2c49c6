"""mine_hard_negatives: blocked nearest-neighbour search, positive/exclusion removal, filters, sampling."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch.distributed as dist
from tqdm.auto import tqdm

from hardmine._checks import as_generator, check_choice, check_fits_in_memory, check_int, check_number
from hardmine.distributed import agree_on_config, agree_on_errors
from hardmine.retrieval.backends import ExactSearch, QueryBlock, SearchBackend, make_backend
from hardmine.retrieval.distributed import Shard, corpus_shard, merge_across_ranks, reduce_across_ranks
from hardmine.retrieval.embeddings import Embeddings, as_embedding_matrix
from hardmine.retrieval.filters import RANGE_RULES, CandidateFilters
from hardmine.retrieval.idlists import IdLists, to_id_lists
from hardmine.retrieval.rescore import Rescorer, check_rescorer, rescore_pairs
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
    range_rule: str = "ranks",
    rescore: Rescorer | None = None,
    pool_extra: int | None = None,
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
    range_rule "ranks" (hardmine's rule, above) counts the window before the score filters; "survivors"
    (sentence-transformers' rule) retrieves the top range_max + (most positives and excluded ids of any query),
    applies the filters to them, and counts the window [range_min, range_max) over the survivors. pool_extra
    ("survivors" only): retrieve the top range_max + pool_extra instead (mine_from_dataset passes ST 6.3's depth,
    the most rows of one anchor + 1).

    rescore: optional rescore(query_ids, corpus_ids) -> scores (int64 [M] each in, float [M] out, finite),
    e.g. a cross-encoder. The retrieved candidates and every query's positives are re-scored; ranking, window,
    filters and margins then use the re-scored values, and `rescore_removed` counts the candidates the embedding
    scores let through that the re-scored values drop. Under torch.distributed every rank re-scores all pairs.

    index: "exact", "ivf", "hnsw" or a configured SearchBackend; approximate searches state their recall against
    exact search on `recall_sample` queries (0 turns that off). batch_size: queries per block; memory is
    O(batch_size x (corpus block + k)), whatever the corpus size.
    Distributed (torch.distributed initialised, world > 1): every rank passes the same queries; with
    corpus_sharded=False every rank holds the whole corpus and searches 1/world of it; with corpus_sharded=True
    corpus_emb is this rank's shard and global ids follow rank order. All ranks return the same result, and the
    ranks agree on the validity of their inputs before any collective: a bad input on one rank raises the same
    ValueError, naming that rank, on every rank. They also agree (`agree_on_config`) on what must match: the query
    count, dimension and dtype, the corpus size (unsharded), corpus_sharded, num_negatives and the other settings,
    then the positives and excluded ids; a difference raises the same DisagreementError, naming the field and each
    rank's value, on every rank (the query embeddings themselves are not compared).
    """
    with agree_on_errors("mine_hard_negatives", group):
        checked = _check_arguments(query_emb, corpus_emb, num_negatives, range_min, range_max, max_score,
                                   min_score, absolute_margin, relative_margin, sampling, index, metric, seed,
                                   batch_size, recall_sample, range_rule, rescore)
        if pool_extra is not None:
            if range_rule != "survivors":
                raise ValueError(f"pool_extra only applies to range_rule='survivors', got range_rule={range_rule!r}")
            pool_extra = check_int("pool_extra", pool_extra, minimum=0)
    num_negatives, range_min, batch_size, recall_sample, filters, key, backend, queries, matrix, rescore = checked
    cosine = metric == "cosine"
    if dist.is_available() and dist.is_initialized():  # before any collective that these govern
        random = sampling == "random" or backend.approximate
        agree_on_config("mine_hard_negatives", {
            "queries": len(queries), "dim": queries.shape[1], "dtype": str(queries.matrix.dtype),
            "corpus dim": matrix.shape[1], "corpus_sharded": bool(corpus_sharded),
            "corpus rows": None if corpus_sharded else len(matrix), "num_negatives": num_negatives,
            "range_rule": range_rule, "pool_extra": pool_extra,
            "filters": repr(filters), "sampling": sampling, "metric": metric, "index": backend.name,
            "seed": key if random else None, "batch_size": batch_size, "recall_sample": recall_sample,
            "rescore": rescore is not None}, group)
    shard = corpus_shard(len(matrix), corpus_sharded, group)
    with agree_on_errors("mine_hard_negatives", group):
        corpus = Embeddings("corpus_emb", matrix[shard.start:shard.stop], cosine)
        if queries.shape[1] != corpus.shape[1]:
            raise ValueError(f"query_emb has dimension {queries.shape[1]} but corpus_emb has {corpus.shape[1]}")
        num_queries, total = len(queries), shard.global_size
        pos = to_id_lists("positives", positives, num_queries, total)
        removed = pos if exclude is None else IdLists.union(pos, to_id_lists("exclude", exclude, num_queries, total))
        if filters.uses_positive and (pos.counts == 0).any():
            q = int(np.flatnonzero(pos.counts == 0)[0])
            raise ValueError(f"positives[{q}] is empty: a margin needs at least one positive per query")
    if shard.distributed:  # they decide each block's k and the positive pairs gathered
        excluded = None if exclude is None else (removed.offsets, removed.ids)
        agree_on_config("mine_hard_negatives", {"positives": (pos.offsets, pos.ids), "exclude": excluded}, group)
    return _mine(queries, corpus, shard, pos, removed, filters, num_negatives, sampling, backend, key, batch_size,
                 progress, recall_sample, metric, range_rule, rescore, pool_extra)


def _check_arguments(query_emb: Any, corpus_emb: Any, num_negatives: int, range_min: int, range_max: int | None,
                     max_score: float | None, min_score: float | None, absolute_margin: float | None,
                     relative_margin: float | None, sampling: str, index: str | SearchBackend, metric: str,
                     seed: Any, batch_size: int, recall_sample: int, range_rule: str,
                     rescore: Rescorer | None) -> tuple:
    """The local checks of mine_hard_negatives' arguments, before anything is exchanged between ranks."""
    num_negatives = check_int("num_negatives", num_negatives)
    range_min = check_int("range_min", range_min, minimum=0)
    batch_size = check_int("batch_size", batch_size)
    recall_sample = check_int("recall_sample", recall_sample, minimum=0)
    check_choice("sampling", sampling, SAMPLINGS)
    check_choice("metric", metric, METRICS)
    check_choice("range_rule", range_rule, RANGE_RULES)
    rescore = check_rescorer("rescore", rescore)
    filters = _filters(num_negatives, range_min, range_max, max_score, min_score, absolute_margin, relative_margin,
                       range_rule)
    rng = as_generator(seed)
    key = int(seed) % 2**64 if isinstance(seed, (int, np.integer)) else int(rng.integers(2**63))
    backend = make_backend(index, seed=key % 2**31)
    queries = Embeddings("query_emb", query_emb, metric == "cosine")
    matrix = as_embedding_matrix("corpus_emb", corpus_emb)
    check_fits_in_memory(f"num_negatives={num_negatives}", len(queries) * num_negatives * 12,
                         f"for the negatives of {len(queries)} queries (12 bytes each)")
    return num_negatives, range_min, batch_size, recall_sample, filters, key, backend, queries, matrix, rescore


def _mine(queries: Embeddings, corpus: Embeddings, shard: Shard, pos: IdLists, removed: IdLists,
          filters: CandidateFilters, num_negatives: int, sampling: str, backend: SearchBackend, key: int,
          batch_size: int, progress: bool, recall_sample: int, metric: str, range_rule: str,
          rescore: Rescorer | None, pool_extra: int | None = None) -> MinedNegatives:
    """The search, filtering and sampling of checked inputs (collectives only from here on)."""
    num_queries, total = len(queries), shard.global_size
    window_end = min(filters.range_max, total)
    most_removed = int(removed.counts.max(initial=0)) if pool_extra is None else pool_extra
    blocks: list[QueryBlock] = []
    for start in range(0, num_queries, batch_size):
        stop = min(start + batch_size, num_queries)
        extra = most_removed if range_rule == "survivors" else int(removed.counts[start:stop].max(initial=0))
        blocks.append((start, stop, min(window_end + extra, total)))

    positive_min, positive_pairs = _positive_scores(queries, corpus, pos, shard, batch_size)
    found = _search(backend, queries, corpus, blocks, shard, progress)
    recall = _recall(backend, found, queries, corpus, blocks, shard, recall_sample, key) if backend.approximate \
        else None
    retrieved, retrieved_min = found, positive_min
    rescore_removed, rescored = None, 0
    if rescore is not None:
        rows = np.repeat(np.arange(num_queries, dtype=np.int64), pos.counts)
        positive_pairs = rescore_pairs("rescore", rescore, rows, pos.ids).astype(np.float32)
        lowest = np.full(num_queries, np.inf)
        np.minimum.at(lowest, rows, positive_pairs.astype(np.float64))
        positive_min = np.where(np.isfinite(lowest), lowest, np.nan).astype(np.float32)
        found = [_rescored_block(rescore, start, s, ids) for (start, _, _), (s, ids) in zip(blocks, found)]
        rescored = int(pos.ids.size + sum(int((ids >= 0).sum()) for _, ids in found))
        rescore_removed = np.zeros(num_queries, dtype=np.int64)

    indices = np.full((num_queries, num_negatives), -1, dtype=np.int64)
    scores = np.full((num_queries, num_negatives), np.nan, dtype=np.float32)
    candidates = np.zeros(num_queries, dtype=np.int64)
    dropped = {name: np.zeros(num_queries, dtype=np.int64) for name in filters.active}
    for (start, stop, _), (s, ids), (s0, ids0) in zip(blocks, found, retrieved):
        usable = _usable(removed, start, stop, ids, total)
        kept, candidates[start:stop], block_dropped = filters.apply(s, usable, positive_min[start:stop])
        for name, counts in block_dropped.items():
            dropped[name][start:stop] = counts
        if rescore_removed is not None:
            kept0, _, _ = filters.apply(s0, _usable(removed, start, stop, ids0, total), retrieved_min[start:stop])
            rescore_removed[start:stop] = _lost(kept0, ids0, kept, ids, total)
        cols = choose(kept, num_negatives, sampling, key, np.arange(start, stop), ids)
        ok = cols >= 0
        safe = np.where(ok, cols, 0)
        indices[start:stop] = np.where(ok, np.take_along_axis(ids, safe, axis=1), -1)
        scores[start:stop] = np.where(ok, np.take_along_axis(s, safe, axis=1), np.nan)
    return MinedNegatives(indices, scores, positive_min, candidates, dropped, pos, search=backend.name,
                          search_recall=recall, recall_k=min(b[2] for b in blocks) if recall is not None else None,
                          metric=metric, positive_pair_scores=positive_pairs, rescore_removed=rescore_removed,
                          rescored_pairs=rescored)


def _usable(removed: IdLists, start: int, stop: int, ids: np.ndarray, total: int) -> np.ndarray:
    """bool [B, K]: a real candidate that is neither a positive nor an excluded id of its query."""
    rows, excluded_ids = removed.block_pairs(start, stop)
    return (ids >= 0) & ~np.isin(_pair_keys(np.arange(stop - start)[:, None], ids, total),
                                 _pair_keys(rows, excluded_ids, total))


def _rescored_block(rescore: Rescorer, start: int, s: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The block's candidates re-scored and re-sorted descending (padding stays last with -inf)."""
    valid = ids >= 0
    rows = np.nonzero(valid)[0].astype(np.int64) + start
    new = np.full(s.shape, -np.inf, dtype=np.float32)
    new[valid] = rescore_pairs("rescore", rescore, rows, ids[valid])
    order = np.argsort(-new, axis=1, kind="stable")
    return np.take_along_axis(new, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _lost(kept0: np.ndarray, ids0: np.ndarray, kept: np.ndarray, ids: np.ndarray, total: int) -> np.ndarray:
    """Per row, ids kept under the first scores (kept0, ids0) that are not kept under the second: int64 [B]."""
    rows = np.arange(len(ids))[:, None]
    before = _pair_keys(np.broadcast_to(rows, ids0.shape)[kept0], ids0[kept0], total)
    after = _pair_keys(np.broadcast_to(rows, ids.shape)[kept], ids[kept], total)
    lost = ~np.isin(before, after)
    return np.bincount(np.broadcast_to(rows, ids0.shape)[kept0][lost], minlength=len(ids)).astype(np.int64)


def _filters(num_negatives: int, range_min: int, range_max: int | None, max_score: float | None,
             min_score: float | None, absolute_margin: float | None,
             relative_margin: float | None, range_rule: str = "ranks") -> CandidateFilters:
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
    return CandidateFilters(range_min, range_max, **values, range_rule=range_rule)


def _pair_keys(rows: np.ndarray, ids: np.ndarray, total: int) -> np.ndarray:
    """One int64 key per (row, corpus id) pair, for set membership tests."""
    return rows.astype(np.int64) * (total + 1) + ids


def _positive_scores(queries: Embeddings, corpus: Embeddings, pos: IdLists, shard: Shard,
                     batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the lowest score among its positives held by any rank (float32 [Q], NaN when it has none), and
    the score of every positive pair in `pos` order (float32 [nnz])."""
    lowest = np.full(len(queries), np.inf)
    pairs = np.full(pos.ids.size, -np.inf)
    for start in range(0, len(queries), batch_size):
        stop = min(start + batch_size, len(queries))
        rows, ids = pos.block_pairs(start, stop)
        local = (ids >= shard.offset) & (ids < shard.offset + len(corpus))
        rows, ids = rows[local], ids[local] - shard.offset
        if rows.size:
            q = queries.block(start, stop)
            s = np.einsum("ij,ij->i", q[rows], corpus.rows(ids)).astype(np.float64)
            np.minimum.at(lowest, rows + start, s)
            pairs[pos.offsets[start] + np.flatnonzero(local)] = s
    lowest = reduce_across_ranks(lowest, "min", shard)
    pairs = -reduce_across_ranks(-pairs, "min", shard)  # each pair is held by one rank, -inf elsewhere
    return np.where(np.isfinite(lowest), lowest, np.nan).astype(np.float32), pairs.astype(np.float32)


def _search(backend: SearchBackend, queries: Embeddings, corpus: Embeddings, blocks: list[QueryBlock], shard: Shard,
            progress: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    found = backend.search(queries, corpus, blocks, progress=progress and shard.rank == 0)
    merged = []
    for (_, _, k), (s, ids) in tqdm(list(zip(blocks, found)), desc="merge", disable=not (progress and
                                                                                           shard.distributed)):
        ids = np.where(ids >= 0, ids + shard.offset, -1)
        merged.append(merge_across_ranks(s, ids, k, shard))
    return merged


def _recall(backend: SearchBackend, found: list[tuple[np.ndarray, np.ndarray]], queries: Embeddings,
            corpus: Embeddings, blocks: list[QueryBlock], shard: Shard, sample: int, key: int) -> float | None:
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
