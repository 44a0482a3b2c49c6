"""MinedNegatives: the negatives found per query, their scores, and what each filter dropped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardmine.retrieval.formats import st_columns
from hardmine.retrieval.idlists import IdLists
from hardmine.retrieval.writers import training_rows, write_jsonl, write_parquet


@dataclass
class MinedNegatives:
    """Q queries, n negatives asked per query.

    indices: int64 [Q, n], corpus ids in descending score order, -1 where fewer than n were found.
    scores: float32 [Q, n], similarity of each negative to its query (NaN where indices is -1).
    positive_scores: float32 [Q], the query's lowest positive score: the reference of both margins (NaN if none).
    candidates: int64 [Q], candidates in the rank window (positives and excluded ids never count).
    dropped: filter name -> int64 [Q], candidates that filter dropped (filters apply in order, each counting among
    those still alive, so candidates = kept + sum of dropped).
    positives: the positive ids per query, used to write training rows.
    search: backend name; search_recall: recall@`recall_k` of an approximate search against exact search on a
    sample of queries (None for exact search).
    positive_pair_scores: float32 [nnz], the score of every (query, positive) pair in `positives` order.
    rescore_removed: int64 [Q] when candidates were re-scored: candidates the embedding scores let through that
    the re-scored values dropped; rescored_pairs: pairs sent to the rescorer.
    """

    indices: np.ndarray
    scores: np.ndarray
    positive_scores: np.ndarray
    candidates: np.ndarray
    dropped: dict[str, np.ndarray]
    positives: IdLists
    search: str = "exact"
    search_recall: float | None = None
    recall_k: int | None = None
    metric: str = "cosine"
    positive_pair_scores: np.ndarray | None = None
    rescore_removed: np.ndarray | None = None
    rescored_pairs: int = 0

    @property
    def num_negatives(self) -> int:
        return self.indices.shape[1]

    @property
    def found(self) -> np.ndarray:
        """Negatives found per query, int64 [Q]."""
        return (self.indices >= 0).sum(axis=1)

    def summary(self) -> dict[str, float]:
        """Totals: queries, negatives found, queries short of n, per-filter drops and their share of the window,
        mean positive / negative scores, the mean of (negative - its query's lowest positive), the search recall
        when approximate, and what re-scoring removed."""
        found = self.found
        window = int(self.candidates.sum())
        neg = self.scores[self.indices >= 0]
        out: dict[str, float] = {
            "queries": len(self.indices),
            "negatives_asked": self.num_negatives,
            "negatives_found": int(found.sum()),
            "queries_short": int((found < self.num_negatives).sum()),
            "queries_without_negatives": int((found == 0).sum()),
            "candidates": window,
        }
        for name, counts in self.dropped.items():
            out[f"dropped_{name}"] = int(counts.sum())
            out[f"dropped_{name}_share"] = float(counts.sum() / window) if window else 0.0
        pos = self.positive_scores[np.isfinite(self.positive_scores)]
        out["positive_score_mean"] = float(pos.mean()) if pos.size else float("nan")
        out["negative_score_mean"] = float(neg.mean()) if neg.size else float("nan")
        gap = (self.scores - self.positive_scores[:, None].astype(np.float32))[self.indices >= 0]
        gap = gap[np.isfinite(gap)]
        out["negative_minus_positive_mean"] = float(gap.mean()) if gap.size else float("nan")
        if self.search_recall is not None:
            out[f"search_recall@{self.recall_k}"] = self.search_recall
        if self.rescore_removed is not None:
            out["rescored_pairs"] = self.rescored_pairs
            out["rescore_removed"] = int(self.rescore_removed.sum())
            out["rescore_removed_share"] = float(self.rescore_removed.sum() / window) if window else 0.0
        return out

    def notes(self) -> list[str]:
        """Plain-language warnings: filters that dropped most of the window, queries left short."""
        summary, notes = self.summary(), []
        for name in self.dropped:
            share = summary[f"dropped_{name}_share"]
            if share > 0.5:
                notes.append(f"{name} dropped {share:.0%} of the candidates in the rank window: "
                             "widen range_max or loosen it")
        if summary["negative_minus_positive_mean"] > 0:
            notes.append(f"negatives score higher than positives on average (by "
                         f"{summary['negative_minus_positive_mean']:.3f} over their query's lowest positive): many "
                         "are likely false negatives; set a margin (relative_margin=0.05) or re-score the candidates")
        if summary["queries_short"]:
            notes.append(f"{summary['queries_short']} of {summary['queries']} queries have fewer than "
                         f"{self.num_negatives} negatives (padded with -1)")
        return notes

    def to_parquet(self, path: str | Path, queries: Sequence[str] | None = None, corpus: Sequence[str] | None = None,
                   drop_incomplete: bool = True) -> int:
        """Write one row per (query, positive) pair with columns anchor, positive, negative_1..negative_n (texts
        when `queries` and `corpus` are given, ids otherwise), atomically. Rows of queries short of n negatives are
        skipped unless `drop_incomplete` is False (then missing negatives are null). Returns the rows written."""
        columns = training_rows(self.indices, self.positives, queries, corpus, drop_incomplete)
        return write_parquet(Path(path), columns)

    def to_jsonl(self, path: str | Path, queries: Sequence[str] | None = None, corpus: Sequence[str] | None = None,
                 drop_incomplete: bool = True) -> int:
        """As `to_parquet`, one JSON object per line."""
        columns = training_rows(self.indices, self.positives, queries, corpus, drop_incomplete)
        return write_jsonl(Path(path), columns)

    def to_dataset(self, queries: Sequence[str], corpus: Sequence[str], output_format: str = "n-tuple",
                   anchor_column_name: str = "anchor", positive_column_name: str = "positive",
                   output_scores: bool = False):
        """A `datasets.Dataset` in one of sentence-transformers' layouts ("triplet", "n-tuple", "labeled-pair",
        "labeled-list", see formats.st_columns), texts looked up in `queries` [Q] and `corpus`, in memory."""
        from datasets import Dataset

        if len(queries) != len(self.indices):
            raise ValueError(f"queries has {len(queries)} texts but {len(self.indices)} queries were mined")
        if self.indices.max(initial=-1) >= len(corpus) or (self.positives.ids.size and
                                                          self.positives.ids.max() >= len(corpus)):
            raise ValueError(f"corpus has {len(corpus)} texts but a mined or positive id is beyond it")
        pair_scores = self.positive_pair_scores if self.positive_pair_scores is not None else np.repeat(
            self.positive_scores, self.positives.counts)
        return Dataset.from_dict(st_columns(self.indices, self.scores, self.positives, pair_scores, queries, corpus,
                                            output_format, anchor_column_name, positive_column_name, output_scores))
