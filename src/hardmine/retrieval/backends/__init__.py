"""Nearest-neighbour backends: exact (FAISS flat or torch matmul), IVF and HNSW (FAISS)."""

from __future__ import annotations

from hardmine.retrieval.backends.base import Block, SearchBackend
from hardmine.retrieval.backends.exact import ExactSearch
from hardmine.retrieval.backends.hnsw import HNSWSearch
from hardmine.retrieval.backends.ivf import IVFSearch

__all__ = ["Block", "ExactSearch", "HNSWSearch", "IVFSearch", "SearchBackend", "make_backend"]


def make_backend(index: str | SearchBackend, seed: int = 0) -> SearchBackend:
    """A backend from its short name ("exact", "ivf", "hnsw") with default settings, or `index` itself."""
    if isinstance(index, SearchBackend):
        return index
    if index == "exact":
        return ExactSearch()
    if index == "ivf":
        return IVFSearch(seed=seed)
    if index == "hnsw":
        return HNSWSearch()
    raise ValueError(f"index must be 'exact', 'ivf', 'hnsw' or a SearchBackend, got {index!r}")

