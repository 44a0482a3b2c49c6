"""hardmine: hard example mining for PyTorch training.

The public names are listed in `__all__`: what a training loop and an extension author need (see the README for
the three touch points in a training loop). Every other component lives in its subpackage
(`hardmine.sampling.policies`, `hardmine.sampling.guards`, `hardmine.inbatch`, `hardmine.metric`,
`hardmine.retrieval`, ...); a name that left the top level still works as `hm.X` for a release, with a
DeprecationWarning naming its import path.
"""

from hardmine import scores
from hardmine._deprecated import renamed
from hardmine.checkpoint import load_state, save_state
from hardmine.inbatch.class_weighted import ClassWeightedLoss
from hardmine.inbatch.logit_adjusted import LogitAdjustedLoss
from hardmine.inbatch.losses import FocalLoss, MisclassifiedUpweight, OHEMLoss
from hardmine.inbatch.reduction import reduce
from hardmine.inbatch.select import Stochastic, Threshold, TopK
from hardmine.sampling import schedules
from hardmine.sampling.guards import ClassBalance, CoverageGuard, Guard, NoiseGuard, WeightCap
from hardmine.sampling.memory import Column, ScoreMemory
from hardmine.sampling.policies import (
    ImportancePolicy,
    Policy,
    PriorityPolicy,
    SubsetPolicy,
    UniformPolicy,
    build_policy,
)
from hardmine.sampling.reference import cross_fit_losses, reference_losses, train_reference
from hardmine.sampling.sampler import HardExampleSampler, WithIndex
from hardmine.streams import HardStream
from hardmine.weights import BatchWeights

__all__ = [
    # the three touch points of a training loop, and checkpoints
    "ScoreMemory",
    "Column",
    "HardExampleSampler",
    "WithIndex",
    "HardStream",
    "reduce",
    "BatchWeights",
    "save_state",
    "load_state",
    # policies: by name (`build_policy("rank")`), the default, and the bases an extension subclasses
    "build_policy",
    "ImportancePolicy",
    "UniformPolicy",
    "Policy",
    "PriorityPolicy",
    "SubsetPolicy",
    "schedules",
    # guards
    "Guard",
    "ClassBalance",
    "CoverageGuard",
    "NoiseGuard",
    "WeightCap",
    # inside one batch
    "OHEMLoss",
    "FocalLoss",
    "MisclassifiedUpweight",
    "ClassWeightedLoss",
    "LogitAdjustedLoss",
    "TopK",
    "Threshold",
    "Stochastic",
    # difficulty signals and RHO-LOSS's reference model
    "scores",
    "reference_losses",
    "cross_fit_losses",
    "train_reference",
    # comparing strategies on a data set
    "compare",
]
__version__ = "0.1.0"

_SUBPACKAGES = ("metric", "retrieval", "datasets", "experiments", "diagnostics", "llm")

_MOVED = {  # a name that left the top level -> the module it is imported from now
    **dict.fromkeys(("POLICIES", "IRREDUCIBLE_LOSS", "AntiCurriculumPolicy", "BatchPolicy", "CandidatePolicy",
                     "ClassBalancedPolicy", "CurriculumPolicy", "OnlineTopLossPolicy", "PacingPolicy",
                     "PruneEasyPolicy", "RankPolicy", "RhoLossPolicy", "SelectiveBackpropPolicy", "SelfPacedPolicy",
                     "TopKFractionPolicy"), "hardmine.sampling.policies"),
    "GUARDS": "hardmine.sampling.guards",
    "LOSSES": "hardmine.inbatch.losses",
    "SELECTORS": "hardmine.inbatch.select",
    "Selection": "hardmine.inbatch.select",
    "mine_negatives_ssd": "hardmine.inbatch.detection",
    "ohem_rois": "hardmine.inbatch.detection",
    "RefreshCallback": "hardmine.sampling.refresh",
    "SumTree": "hardmine.sampling.sumtree",
}


def _load(module: str, name: str | None = None):
    import importlib

    loaded = importlib.import_module(module)
    return loaded if name is None else getattr(loaded, name)


def _lazy(name: str):
    """Subpackages load on first use (`hm.retrieval`, `hm.metric`, ...), keeping `import hardmine` light;
    `hm.compare` is `hardmine.experiments.compare`, loaded the same way."""
    if name == "compare":
        return _load("hardmine.experiments.api", "compare")
    if name in _SUBPACKAGES:
        return _load(f"hardmine.{name}")
    raise AttributeError(f"module 'hardmine' has no attribute {name!r}")


__getattr__ = renamed(__name__, {
    **{name: (f"from {module} import {name}", lambda m=module, n=name: _load(m, n)) for name, module in _MOVED.items()},
    "guards": ("import hardmine.sampling.guards", lambda: _load("hardmine.sampling.guards")),
}, _lazy)
