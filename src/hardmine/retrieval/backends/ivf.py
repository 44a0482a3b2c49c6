"""Approximate search through a FAISS inverted-file index (IVF-Flat): k-means cells, `nprobe` cells scanned."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from hardmine._checks import as_generator, check_int
from hardmine.retrieval.backends.base import QueryBlock, SearchBackend, faiss_module
from hardmine.retrieval.embeddings import Embeddings


class IVFSearch(SearchBackend):
    """IVF-Flat: `nlist` k-means cells (default about sqrt(C)), trained on `train_size` sampled rows (default
    50 per cell), `nprobe` cells scanned per query. Recall rises with nprobe / nlist; mining states it.

    After a search, `build_seconds_` holds the time spent training and filling the index.
    """

    name: ClassVar[str] = "ivf"
    approximate: ClassVar[bool] = True

    def __init__(self, nlist: int | None = None, nprobe: int = 32, train_size: int | None = None,
                 add_batch_size: int = 65536, seed: int = 0) -> None:
        self.nlist = None if nlist is None else check_int("nlist", nlist)
        self.nprobe = check_int("nprobe", nprobe)
        self.train_size = None if train_size is None else check_int("train_size", train_size)
        self.add_batch_size = check_int("add_batch_size", add_batch_size)
        self.seed = check_int("seed", seed, minimum=0)
        self.build_seconds_: float | None = None

    def build(self, corpus: Embeddings):
        """Train the coarse quantiser on a seeded sample of the corpus and add every row; returns the index."""
        faiss = faiss_module()
        started = time.perf_counter()
        n, d = corpus.shape
        nlist = self.nlist or max(1, min(int(round(np.sqrt(n))), n // 39 or 1))
        train_size = min(n, self.train_size or 50 * nlist)
        sample = np.sort(as_generator(self.seed).choice(n, size=train_size, replace=False))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self.seed
        index.train(corpus.rows(sample))
        for _, chunk in corpus.blocks(self.add_batch_size):
            index.add(chunk)
        index.nprobe = min(self.nprobe, nlist)
        self.build_seconds_ = time.perf_counter() - started
        return index

    def search(self, queries: Embeddings, corpus: Embeddings, blocks: Sequence[QueryBlock],
               progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        return self.search_index(self.build(corpus), queries, blocks, progress)
