"""Nearest-neighbour backends: exact (FAISS flat or torch matmul), IVF and HNSW (FAISS)."""

from __future__ import annotations

import inspect

from hardmine._checks import check_choice
from hardmine._deprecated import renamed
from hardmine.retrieval.backends.base import BACKENDS, QueryBlock, SearchBackend
from hardmine.retrieval.backends.exact import ExactSearch
from hardmine.retrieval.backends.hnsw import HNSWSearch
from hardmine.retrieval.backends.ivf import IVFSearch

__all__ = ["BACKENDS", "ExactSearch", "HNSWSearch", "IVFSearch", "QueryBlock", "SearchBackend", "make_backend"]


__getattr__ = renamed(__name__, {"Block": ("from hardmine.retrieval.backends import QueryBlock", lambda: QueryBlock)})

def make_backend(index: str | SearchBackend, seed: int = 0) -> SearchBackend:
    """A backend from its registered name ("exact", "ivf", "hnsw", ...) with default settings (and `seed` when it
    takes one), or `index` itself."""
    if isinstance(index, SearchBackend):
        return index
    cls = BACKENDS[check_choice("index", index, sorted(BACKENDS), "a SearchBackend")]
    return cls(seed=seed) if "seed" in inspect.signature(cls).parameters else cls()

