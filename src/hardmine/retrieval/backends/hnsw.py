"""Approximate search through a FAISS HNSW graph (IndexHNSWFlat, inner product)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from hardmine._checks import check_int
from hardmine.retrieval.backends.base import QueryBlock, SearchBackend, faiss_module
from hardmine.retrieval.embeddings import Embeddings


class HNSWSearch(SearchBackend):
    """HNSW graph with `m` links per node, built with `ef_construction`, searched with max(`ef_search`, k).

    Building is the expensive part (and multi-threaded, so graph details may vary between runs); mining states the
    recall it measured. After a search, `build_seconds_` holds the build time.
    """

    name: ClassVar[str] = "hnsw"
    approximate: ClassVar[bool] = True

    def __init__(self, m: int = 32, ef_construction: int = 80, ef_search: int = 128,
                 add_batch_size: int = 65536) -> None:
        self.m = check_int("m", m, minimum=2)
        self.ef_construction = check_int("ef_construction", ef_construction)
        self.ef_search = check_int("ef_search", ef_search)
        self.add_batch_size = check_int("add_batch_size", add_batch_size)
        self.build_seconds_: float | None = None

    def build(self, corpus: Embeddings):
        """Insert every corpus row into a new graph; returns the index."""
        faiss = faiss_module()
        started = time.perf_counter()
        index = faiss.IndexHNSWFlat(corpus.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        for _, chunk in corpus.blocks(self.add_batch_size):
            index.add(chunk)
        self.build_seconds_ = time.perf_counter() - started
        return index

    def search(self, queries: Embeddings, corpus: Embeddings, blocks: Sequence[QueryBlock],
               progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        index = self.build(corpus)

        def tune(k: int) -> None:
            index.hnsw.efSearch = max(self.ef_search, k)

        return self.search_index(index, queries, blocks, progress, tune)
