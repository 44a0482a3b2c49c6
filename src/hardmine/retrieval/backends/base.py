"""The contract every nearest-neighbour backend meets: per query block, the top-k corpus rows by inner product."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from hardmine.retrieval.embeddings import Embeddings

#: (start, stop, k): queries [start, stop) need their k best corpus rows.
Block = tuple[int, int, int]


class SearchBackend(ABC):
    """Finds, for each block of queries, the `k` corpus rows with the highest inner product (cosine when the
    embeddings are normalised). Results use local corpus row ids, scores float32 descending, padding (-inf, -1)."""

    name: ClassVar[str]
    approximate: ClassVar[bool]

    @abstractmethod
    def search(self, queries: Embeddings, corpus: Embeddings, blocks: Sequence[Block],
               progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
        """One (scores float32 [stop - start, k], ids int64 [stop - start, k]) pair per block, in block order."""


def faiss_module():
    """Import faiss, or explain how to get it."""
    try:
        import faiss
    except ImportError as err:
        raise ImportError("this search backend needs FAISS: pip install 'hardmine[retrieval]' (faiss-cpu)") from err
    return faiss
