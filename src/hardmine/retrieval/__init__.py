"""Hard negatives for retrieval: mined from large candidate pools, filtered for false negatives, refreshed as
the encoder learns."""

from hardmine.retrieval.backends import ExactSearch, HNSWSearch, IVFSearch, SearchBackend
from hardmine.retrieval.filters import CandidateFilters
from hardmine.retrieval.mining import mine_hard_negatives
from hardmine.retrieval.result import MinedNegatives

__all__ = ["CandidateFilters", "ExactSearch", "HNSWSearch", "IVFSearch", "MinedNegatives", "SearchBackend",
           "mine_hard_negatives"]
