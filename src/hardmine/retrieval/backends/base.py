"""The contract every nearest-neighbour backend meets: per query block, the top-k corpus rows by inner product."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from tqdm.auto import tqdm

from hardmine.registry import Registered, Registry
from hardmine.retrieval.embeddings import Embeddings

#: (start, stop, k): queries [start, stop) need their k best corpus rows (`hardmine.metric`'s Block is another
#: thing: a row block of a distance matrix).
QueryBlock = tuple[int, int, int]


BACKENDS = Registry("index")
"""Every SearchBackend subclass with a `name`, registered by subclassing: `BACKENDS["ivf"]`."""


class SearchBackend(Registered, ABC):
    """Finds, for each block of queries, the `k` corpus rows with the highest inner product (cosine when the
    embeddings are normalised). Results use local corpus row ids, scores float32 descending, padding (-inf, -1)."""

    registry: ClassVar[Registry] = BACKENDS
    approximate: ClassVar[bool]

    @abstractmethod
    def search(self, queries: Embeddings, corpus: Embeddings, blocks: Sequence[QueryBlock],
               progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """One (scores float32 [stop - start, k], ids int64 [stop - start, k]) pair per block, in block order."""

    def search_index(self, index: Any, queries: Embeddings, blocks: Sequence[QueryBlock], progress: bool,
                     before_block: Callable[[int], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Search a built FAISS `index` block by block; `before_block(k)` may tune it for each block's k.

        FAISS pads missing results with id -1; their scores become -inf.
        """
        out = []
        for start, stop, k in tqdm(blocks, desc=f"{self.name} search", unit="block", disable=not progress):
            if before_block is not None:
                before_block(k)
            scores, ids = index.search(queries.block(start, stop), k)
            out.append((np.where(ids >= 0, scores, -np.inf).astype(np.float32), ids.astype(np.int64, copy=False)))
        return out


def faiss_module():
    """Import faiss, or explain how to get it."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError("this search backend needs FAISS: pip install 'hardmine[retrieval]' (faiss-cpu)") from err
    return faiss
