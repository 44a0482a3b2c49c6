"""Texts for mining: queries and corpus deduplicated (the mapping kept), positives as corpus ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardmine.retrieval.idlists import IdLists, to_id_lists


def check_texts(name: str, texts: Any) -> list[str]:
    """`texts` as a list of str, or a TypeError naming `name` and the first bad entry."""
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"{name}[{bad}] must be a string, got {texts[bad]!r} of type {type(texts[bad]).__name__}")
    return texts


@dataclass(frozen=True)
class TextPairs:
    """(anchor, positive) rows as ids over deduplicated texts.

    queries: distinct anchors in first-seen order; corpus: distinct texts of the given corpus followed by the
    positives (each text once, so a copy of a positive can never be its negative); positives: per query, its
    distinct positive corpus ids in first-seen order; row_query int64 [rows]: each input row's query id;
    corpus_ids int64 [len(given corpus)]: each given corpus text's id in `corpus`.
    """

    queries: list[str]
    corpus: list[str]
    positives: IdLists
    row_query: np.ndarray
    corpus_ids: np.ndarray

    @classmethod
    def from_rows(cls, anchors: Sequence[str], positives: Sequence[str],
                  corpus: Sequence[str] | None = None) -> TextPairs:
        """Deduplicate like sentence-transformers' mine_hard_negatives: the corpus is `corpus` (default: the
        positives) plus the positives, each distinct text once."""
        given = list(positives) if corpus is None else list(corpus)
        corpus_idx = {t: i for i, t in enumerate(dict.fromkeys(given + list(positives)))}
        queries_idx = {t: i for i, t in enumerate(dict.fromkeys(anchors))}
        row_query = np.fromiter((queries_idx[a] for a in anchors), dtype=np.int64, count=len(anchors))
        per_query: list[list[int]] = [[] for _ in queries_idx]
        for q, text in zip(row_query.tolist(), positives):
            c = corpus_idx[text]
            if c not in per_query[q]:
                per_query[q].append(c)
        ids = np.fromiter((corpus_idx[t] for t in given), dtype=np.int64, count=len(given))
        return cls(list(queries_idx), list(corpus_idx), to_id_lists("positives", per_query, len(queries_idx),
                                                                    len(corpus_idx)), row_query, ids)

    def identical_to_query(self) -> list[list[int]]:
        """Per query, the corpus id of the text equal to it (empty when none): ids to exclude as negatives."""
        corpus_idx = {t: i for i, t in enumerate(self.corpus)}
        return [[corpus_idx[q]] if q in corpus_idx else [] for q in self.queries]


def identical_texts(queries: Sequence[str], corpus: Sequence[str], positives: Any,
                    include_query: bool = False) -> list[list[int]]:
    """For the embedding API: per query, the corpus ids whose text equals one of its positives' texts (and the
    query's own text when `include_query`), positives themselves left out; pass them as `exclude=`."""
    queries, corpus = check_texts("queries", queries), check_texts("corpus", corpus)
    pos = to_id_lists("positives", positives, len(queries), len(corpus))
    by_text: dict[str, list[int]] = {}
    for i, t in enumerate(corpus):
        by_text.setdefault(t, []).append(i)
    out = []
    for q in range(len(queries)):
        own = set(pos.row(q).tolist())
        texts = {corpus[c] for c in own} | ({queries[q]} if include_query else set())
        out.append(sorted({i for t in texts for i in by_text.get(t, ())} - own))
    return out


def dedupe(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Distinct texts in first-seen order, and each input text's position among them (int64 [len(texts)])."""
    index: dict[str, int] = {}
    inverse = np.fromiter((index.setdefault(t, len(index)) for t in texts), dtype=np.int64, count=len(texts))
    return list(index), inverse


def limit_corpus(corpus_size: int, positives: Any, limit: int) -> np.ndarray:
    """Corpus rows kept by a corpus limit: every positive of any query plus the first `limit` rows, sorted
    int64 [m]. Remap ids with np.searchsorted(kept, ids)."""
    pos = to_id_lists("positives", positives, len(positives), corpus_size)
    return np.union1d(pos.ids, np.arange(min(limit, corpus_size), dtype=np.int64))
