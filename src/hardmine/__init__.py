"""hardmine: hard example mining for PyTorch training.

The public names are listed in `__all__`; see the README for the three touch points in a training loop.
"""

from hardmine import scores
from hardmine.checkpoint import load_state, save_state
from hardmine.inbatch.class_weighted import ClassWeightedLoss
from hardmine.inbatch.detection import mine_negatives_ssd, ohem_rois
from hardmine.inbatch.logit_adjusted import LogitAdjustedLoss
from hardmine.inbatch.losses import LOSSES, FocalLoss, MisclassifiedUpweight, OHEMLoss
from hardmine.inbatch.reduction import reduce
from hardmine.inbatch.select import SELECTORS, Selection, Stochastic, Threshold, TopK
from hardmine.memory import Column, ScoreMemory
from hardmine.reference import cross_fit_losses, reference_losses, train_reference
from hardmine.sampling import guards, schedules
from hardmine.sampling.guards import (
    GUARDS,
    ClassBalance,
    CoverageGuard,
    Guard,
    NoiseGuard,
    WeightCap,
)
from hardmine.sampling.policies import (
    IRREDUCIBLE_LOSS,
    POLICIES,
    AntiCurriculumPolicy,
    BatchPolicy,
    CandidatePolicy,
    ClassBalancedPolicy,
    CurriculumPolicy,
    ImportancePolicy,
    OnlineTopLossPolicy,
    PacingPolicy,
    Policy,
    PriorityPolicy,
    PruneEasyPolicy,
    RankPolicy,
    RhoLossPolicy,
    SelectiveBackpropPolicy,
    SelfPacedPolicy,
    SubsetPolicy,
    TopKFractionPolicy,
    UniformPolicy,
    build_policy,
)
from hardmine.sampling.refresh import RefreshCallback
from hardmine.sampling.sampler import HardExampleSampler, WithIndex
from hardmine.sampling.sumtree import SumTree
from hardmine.streams import HardStream

__all__ = [
    "GUARDS",
    "IRREDUCIBLE_LOSS",
    "LOSSES",
    "POLICIES",
    "SELECTORS",
    "AntiCurriculumPolicy",
    "BatchPolicy",
    "CandidatePolicy",
    "ClassBalance",
    "ClassBalancedPolicy",
    "ClassWeightedLoss",
    "Column",
    "CoverageGuard",
    "CurriculumPolicy",
    "FocalLoss",
    "Guard",
    "HardExampleSampler",
    "HardStream",
    "ImportancePolicy",
    "LogitAdjustedLoss",
    "MisclassifiedUpweight",
    "NoiseGuard",
    "OHEMLoss",
    "OnlineTopLossPolicy",
    "PacingPolicy",
    "Policy",
    "PriorityPolicy",
    "PruneEasyPolicy",
    "RankPolicy",
    "RefreshCallback",
    "RhoLossPolicy",
    "ScoreMemory",
    "Selection",
    "SelectiveBackpropPolicy",
    "SelfPacedPolicy",
    "Stochastic",
    "SubsetPolicy",
    "SumTree",
    "Threshold",
    "TopK",
    "TopKFractionPolicy",
    "UniformPolicy",
    "WeightCap",
    "WithIndex",
    "build_policy",
    "compare",
    "cross_fit_losses",
    "guards",
    "load_state",
    "mine_negatives_ssd",
    "ohem_rois",
    "reduce",
    "reference_losses",
    "save_state",
    "schedules",
    "scores",
    "train_reference",
]
__version__ = "0.1.0"

_SUBPACKAGES = ("metric", "retrieval", "datasets", "experiments", "diagnostics")


def __getattr__(name: str):
    """Subpackages load on first use (`hm.retrieval`, `hm.metric`, ...), keeping `import hardmine` light;
    `hm.compare` is `hardmine.experiments.compare`, loaded the same way."""
    import importlib

    if name == "compare":
        return importlib.import_module("hardmine.experiments.api").compare
    if name in _SUBPACKAGES:
        return importlib.import_module(f"hardmine.{name}")
    raise AttributeError(f"module 'hardmine' has no attribute {name!r}")
