"""Metric learning: distances, pair and triplet miners (PML-compatible index tuples) and a cross-batch memory.

Every miner is called as `miner(embeddings, labels, ref_emb=None, ref_labels=None)` and returns int64
`(anchor, positive, negative)` or `(anchor1, positive, anchor2, negative)`; `MINERS` and `DISTANCES` map short
names to the classes. Every module here is imported with the package, so a miner in a new file registers itself.
"""

import importlib
import pkgutil

from hardmine.metric.base import MINERS, BaseMiner
from hardmine.metric.batch_hard import BatchHardMiner, EasyPositiveHardNegativeMiner
from hardmine.metric.cross_batch_memory import CrossBatchMemory
from hardmine.metric.distance_weighted import DistanceWeightedMiner
from hardmine.metric.distances import (
    DISTANCES,
    BaseDistance,
    CosineSimilarity,
    DotProductSimilarity,
    EuclideanDistance,
    SquaredEuclideanDistance,
)
from hardmine.metric.multi_similarity import MultiSimilarityMiner
from hardmine.metric.pair_margin import PairMarginMiner
from hardmine.metric.semi_hard import SemiHardMiner
from hardmine.metric.triplet_margin import BatchAllMiner, TripletMarginMiner

__all__ = [
    "DISTANCES",
    "MINERS",
    "BaseDistance",
    "BaseMiner",
    "BatchAllMiner",
    "BatchHardMiner",
    "CosineSimilarity",
    "CrossBatchMemory",
    "DistanceWeightedMiner",
    "DotProductSimilarity",
    "EasyPositiveHardNegativeMiner",
    "EuclideanDistance",
    "MultiSimilarityMiner",
    "PairMarginMiner",
    "SemiHardMiner",
    "SquaredEuclideanDistance",
    "TripletMarginMiner",
]


def _import_every_module() -> None:
    """Import every module of this package, so that a miner in a new file registers without an edit here."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_every_module()
