"""Hard negatives for retrieval: mined from large candidate pools, filtered for false negatives, refreshed as
the encoder learns."""

from hardmine._deprecated import renamed
from hardmine.retrieval.backends import (
    ExactSearch,
    HNSWSearch,
    IVFSearch,
    SearchBackend,
)
from hardmine.retrieval.encode import default_model_path, encode_texts, load_encoder
from hardmine.retrieval.filters import CandidateFilters
from hardmine.retrieval.from_dataset import MinedTexts, mine_from_dataset
from hardmine.retrieval.mining import mine_hard_negatives
from hardmine.retrieval.pool import NegativePool, RefreshRecord
from hardmine.retrieval.result import MinedNegatives
from hardmine.retrieval.texts import TextPairs, identical_texts

__all__ = ["CandidateFilters", "ExactSearch", "HNSWSearch", "IVFSearch", "MinedNegatives", "MinedTexts",
           "NegativePool", "RefreshRecord", "SearchBackend", "TextPairs", "default_model_path", "encode_texts",
           "identical_texts", "load_encoder", "mine_from_dataset", "mine_hard_negatives", "RefreshNegativesCallback"]


def _lazy(name: str):
    """RefreshNegativesCallback loads transformers, so it is imported on first use."""
    if name == "RefreshNegativesCallback":
        from hardmine.retrieval.trainer_callback import RefreshNegativesCallback

        return RefreshNegativesCallback
    raise AttributeError(f"module 'hardmine.retrieval' has no attribute {name!r}")


__getattr__ = renamed(__name__, {
    "RefreshReport": ("from hardmine.retrieval import RefreshRecord", lambda: RefreshRecord)}, _lazy)
