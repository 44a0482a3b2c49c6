"""hardmine: hard example mining for PyTorch training.

The public names are listed in `__all__`; see the README for the three touch points in a training loop.
"""

from hardmine import guards, schedules, scores
from hardmine.checkpoint import load_state, save_state
from hardmine.detection import mine_negatives_ssd, ohem_rois
from hardmine.guards import GUARDS, ClassBalance, CoverageGuard, NoiseGuard, WeightCap
from hardmine.losses import LOSSES, FocalLoss, MisclassifiedUpweight, OHEMLoss
from hardmine.memory import ScoreMemory
from hardmine.policies import (
    POLICIES,
    AntiCurriculumPolicy,
    CurriculumPolicy,
    ImportancePolicy,
    PacingPolicy,
    Policy,
    PruneEasyPolicy,
    RankPolicy,
    SelectiveBackpropPolicy,
    SelfPacedPolicy,
    TopKFractionPolicy,
    UniformPolicy,
    build_policy,
)
from hardmine.reduction import reduce
from hardmine.refresh import RefreshCallback
from hardmine.sampler import HardExampleSampler, WithIndex
from hardmine.select import SELECTORS, Selection, Stochastic, Threshold, TopK
from hardmine.sumtree import SumTree

__all__ = [
    "GUARDS",
    "LOSSES",
    "POLICIES",
    "SELECTORS",
    "AntiCurriculumPolicy",
    "ClassBalance",
    "CoverageGuard",
    "CurriculumPolicy",
    "FocalLoss",
    "HardExampleSampler",
    "ImportancePolicy",
    "MisclassifiedUpweight",
    "NoiseGuard",
    "OHEMLoss",
    "PacingPolicy",
    "Policy",
    "PruneEasyPolicy",
    "RankPolicy",
    "RefreshCallback",
    "ScoreMemory",
    "Selection",
    "SelectiveBackpropPolicy",
    "SelfPacedPolicy",
    "Stochastic",
    "SumTree",
    "Threshold",
    "TopK",
    "TopKFractionPolicy",
    "UniformPolicy",
    "WeightCap",
    "WithIndex",
    "build_policy",
    "compare",
    "guards",
    "load_state",
    "mine_negatives_ssd",
    "ohem_rois",
    "reduce",
    "save_state",
    "schedules",
    "scores",
]
__version__ = "0.1.0"

_SUBPACKAGES = ("metric", "retrieval", "datasets", "experiments", "diagnostics")


def __getattr__(name: str):
    """Subpackages load on first use (`hm.retrieval`, `hm.metric`, ...), keeping `import hardmine` light;
    `hm.compare` is `hardmine.experiments.compare`."""
    if name == "compare":
        from hardmine.experiments.api import compare

        return compare
    if name in _SUBPACKAGES:
        import importlib

        return importlib.import_module(f"hardmine.{name}")
    raise AttributeError(f"module 'hardmine' has no attribute {name!r}")
