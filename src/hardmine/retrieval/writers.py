"""Training rows for sentence-transformers' losses (anchor, positive, negative_1..n), written atomically."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from hardmine.atomic import write_with
from hardmine.retrieval.idlists import IdLists


def training_rows(indices: np.ndarray, positives: IdLists, queries: Sequence[str] | None,
                  corpus: Sequence[str] | None, drop_incomplete: bool) -> dict[str, list[Any]]:
    """Columns of one row per (query, positive): texts when both `queries` and `corpus` are given, else ids."""
    if (queries is None) != (corpus is None):
        raise ValueError("give both queries and corpus texts, or neither (ids are written then)")
    if queries is not None and len(queries) != len(indices):
        raise ValueError(f"queries has {len(queries)} texts but {len(indices)} queries were mined")
    if corpus is not None and len(indices) and indices.max(initial=-1) >= len(corpus):
        raise ValueError(f"corpus has {len(corpus)} texts but a mined id is {int(indices.max())}")
    rows = np.repeat(np.arange(len(indices)), positives.counts)
    pos_ids = positives.ids
    if drop_incomplete:
        full = (indices[rows] >= 0).all(axis=1)
        rows, pos_ids = rows[full], pos_ids[full]
    query_of: Callable[[int], Any] = (lambda q: queries[q]) if queries is not None else int
    doc_of: Callable[[int], Any] = (lambda c: None if c < 0 else corpus[c]) if corpus is not None else int
    columns: dict[str, list[Any]] = {
        "anchor": [query_of(int(q)) for q in rows],
        "positive": [doc_of(int(p)) for p in pos_ids],
    }
    negs = indices[rows]
    for j in range(indices.shape[1]):
        col = [doc_of(int(c)) for c in negs[:, j]]
        columns[f"negative_{j + 1}"] = col if corpus is not None else [None if c < 0 else c for c in col]
    return columns


def write_parquet(path: Path, columns: dict[str, list[Any]]) -> int:
    """Write `columns` as a parquet file via a temporary file in the same directory; returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda f: pq.write_table(pa.table(columns), f))
    return len(columns["anchor"])


def write_jsonl(path: Path, columns: dict[str, list[Any]]) -> int:
    """Write `columns` as JSON lines via a temporary file in the same directory; returns the row count."""
    names = list(columns)

    def write(f: IO[bytes]) -> None:
        for values in zip(*(columns[n] for n in names)):
            f.write((json.dumps(dict(zip(names, values)), ensure_ascii=False) + "\n").encode("utf-8"))

    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, write)
    return len(columns["anchor"])
