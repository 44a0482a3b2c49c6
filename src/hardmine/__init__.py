"""hardmine: hard example mining for PyTorch training.

The public names are listed in `__all__`; see the README for the three touch points in a training loop.
"""

from hardmine.checkpoint import load_state, save_state
from hardmine.detection import mine_negatives_ssd, ohem_rois
from hardmine.losses import LOSSES, FocalLoss, MisclassifiedUpweight, OHEMLoss
from hardmine.memory import ScoreMemory
from hardmine.policies import POLICIES, ImportancePolicy, Policy, UniformPolicy, build_policy
from hardmine.reduction import reduce
from hardmine.sampler import HardExampleSampler, WithIndex
from hardmine.select import SELECTORS, Selection, Stochastic, Threshold, TopK
from hardmine.sumtree import SumTree

__all__ = [
    "LOSSES",
    "POLICIES",
    "SELECTORS",
    "FocalLoss",
    "HardExampleSampler",
    "ImportancePolicy",
    "MisclassifiedUpweight",
    "OHEMLoss",
    "Policy",
    "ScoreMemory",
    "Selection",
    "Stochastic",
    "SumTree",
    "Threshold",
    "TopK",
    "UniformPolicy",
    "WithIndex",
    "build_policy",
    "load_state",
    "mine_negatives_ssd",
    "ohem_rois",
    "reduce",
    "save_state",
]
__version__ = "0.1.0"
