"""Reading the command's inputs: embeddings (.npy), texts and qrels (.parquet / .jsonl / .tsv)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

TEXT_SUFFIXES = (".parquet", ".jsonl")


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    return path


def read_table(path: Path, what: str) -> dict[str, list[Any]]:
    """Columns of a .parquet or .jsonl file."""
    _existing(path, what)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pydict()
    if path.suffix == ".jsonl":
        rows = []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{what} {path}:{number} is not valid JSON ({err.msg})") from None
        names = list(dict.fromkeys(name for row in rows for name in row))
        return {name: [row.get(name) for row in rows] for name in names}
    raise ValueError(f"{what} must be .npy, .parquet or .jsonl, got {path.name!r}")


def read_embeddings_or_texts(path: Path, what: str, column: str) -> np.ndarray | list[str]:
    """A memory-mapped [n, d] array from .npy, or the texts of `column` from .parquet / .jsonl."""
    if path.suffix == ".npy":
        _existing(path, what)
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as err:  # truncated, not .npy, object dtype (pickles refused)
            raise ValueError(f"--{what} {path} cannot be read as a .npy array of embeddings ({err})") from None
        if array.ndim != 2 or array.dtype.kind not in "fiu" or 0 in array.shape:
            raise ValueError(f"--{what} {path} must hold a non-empty 2-D [n, d] array of numbers, got dtype "
                             f"{array.dtype} of shape {array.shape}")
        return array
    table = read_table(path, what)
    if column not in table:
        raise ValueError(f"{what} {path} has no column {column!r} (columns: {', '.join(table) or 'none'})")
    texts = table[column]
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"{what} {path} row {bad}: column {column!r} holds {texts[bad]!r}, not text")
    return texts


def read_qrels(path: Path, num_queries: int) -> list[list[int]]:
    """Positive pairs (query row, corpus row) from a .tsv (two integer columns, optional header) or a
    .parquet / .jsonl with columns query_id and corpus_id; returns the positives of each query."""
    if path.suffix == ".tsv":
        pairs = []
        with open(_existing(path, "qrels"), encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                fields = line.split()
                if not fields or (number == 1 and not fields[0].lstrip("-").isdigit()):
                    continue
                try:
                    pairs.append((int(fields[0]), int(fields[1])))
                except (ValueError, IndexError):
                    raise ValueError(f"qrels {path}:{number}: expected two integers, got {line.strip()!r}") from None
    else:
        table = read_table(path, "qrels")
        for name in ("query_id", "corpus_id"):
            if name not in table:
                raise ValueError(f"qrels {path} has no column {name!r}")
        pairs = list(zip(table["query_id"], table["corpus_id"]))
    positives: list[list[int]] = [[] for _ in range(num_queries)]
    for q, c in pairs:
        if not isinstance(q, int) or not 0 <= q < num_queries:
            raise ValueError(f"qrels {path}: query_id {q!r} is out of range [0, {num_queries})")
        if not isinstance(c, int):
            raise ValueError(f"qrels {path}: corpus_id {c!r} is not an integer")
        positives[q].append(c)
    return positives
