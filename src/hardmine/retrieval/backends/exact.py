"""Exact search: corpus blocks x query blocks, each scored by FAISS's flat inner product or a torch matmul."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from hardmine._checks import check_choice, check_int
from hardmine.retrieval.backends.base import QueryBlock, SearchBackend, faiss_module
from hardmine.retrieval.embeddings import Embeddings
from hardmine.retrieval.topk import empty_topk, merge_topk

_ENGINES = ("auto", "faiss", "torch")


class ExactSearch(SearchBackend):
    """Exact top-k by inner product, in blocks: memory is one (query block x corpus block) score tile.

    engine: "faiss" (faiss.knn, a BLAS matmul with heap selection; the faster one on the CPUs measured),
    "torch" (matmul + torch.topk), or "auto" (faiss when installed). corpus_batch_size: corpus rows per block.
    """

    name: ClassVar[str] = "exact"
    approximate: ClassVar[bool] = False

    def __init__(self, engine: str = "auto", corpus_batch_size: int = 131072) -> None:
        check_choice("engine", engine, _ENGINES)
        self.engine = engine
        self.corpus_batch_size = check_int("corpus_batch_size", corpus_batch_size)

    def _resolved_engine(self) -> str:
        if self.engine != "auto":
            return self.engine
        try:
            faiss_module()
        except ImportError:
            return "torch"
        return "faiss"

    def search(self, queries: Embeddings, corpus: Embeddings, blocks: Sequence[QueryBlock],
               progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        knn = _faiss_knn if self._resolved_engine() == "faiss" else _torch_knn
        results = [empty_topk(stop - start, k) for start, stop, k in blocks]
        num_chunks = -(-len(corpus) // self.corpus_batch_size)
        with tqdm(total=num_chunks * len(blocks), desc="exact search", unit="block", disable=not progress) as bar:
            for offset, chunk in corpus.blocks(self.corpus_batch_size):
                for b, (start, stop, k) in enumerate(blocks):
                    scores, ids = knn(queries.block(start, stop), chunk, min(k, len(chunk)))
                    ids = np.where(ids >= 0, ids + offset, -1)
                    results[b] = merge_topk([results[b], (scores, ids)], k)
                    bar.update(1)
        return results


def _faiss_knn(queries: np.ndarray, chunk: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    faiss = faiss_module()
    scores, ids = faiss.knn(queries, chunk, k, metric=faiss.METRIC_INNER_PRODUCT)
    return scores, ids.astype(np.int64, copy=False)


def _torch_knn(queries: np.ndarray, chunk: np.ndarray, k: int, tile: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    q = torch.from_numpy(queries)
    parts = []
    for start in range(0, len(chunk), tile):
        block = torch.from_numpy(chunk[start:start + tile])
        scores, ids = torch.topk(q @ block.T, min(k, len(block)), dim=1)
        parts.append((scores.numpy(), ids.numpy() + start))
    return merge_topk(parts, k) if len(parts) > 1 else parts[0]
