"""hardmine: hard example mining for PyTorch training.

The public names are listed in `__all__`; see the README for the three touch points in a training loop.
"""

from hardmine.checkpoint import load_state, save_state
from hardmine.memory import ScoreMemory
from hardmine.policies import POLICIES, ImportancePolicy, Policy, UniformPolicy, build_policy
from hardmine.reduction import reduce
from hardmine.sampler import HardExampleSampler, WithIndex
from hardmine.sumtree import SumTree

__all__ = [
    "POLICIES",
    "HardExampleSampler",
    "ImportancePolicy",
    "Policy",
    "ScoreMemory",
    "SumTree",
    "UniformPolicy",
    "WithIndex",
    "build_policy",
    "load_state",
    "reduce",
    "save_state",
]
__version__ = "0.1.0"
