"""Policies: how the score memory becomes the next batches, registered under short names by subclassing.

A new policy is one file: subclass PriorityPolicy (write `priority`), SubsetPolicy (write `epoch_subset`),
BatchPolicy (write `select`) or CandidatePolicy (write `score`) and set `name`; it is then in `POLICIES` and
buildable by name.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from hardmine.sampling.policies.base import (
    POLICIES,
    BatchPolicy,
    Policy,
    PriorityPolicy,
    SubsetPolicy,
)
from hardmine.sampling.policies.candidates import CandidatePolicy
from hardmine.sampling.policies.class_balanced import ClassBalancedPolicy
from hardmine.sampling.policies.importance import ImportancePolicy
from hardmine.sampling.policies.online_top_loss import OnlineTopLossPolicy
from hardmine.sampling.policies.pacing import (
    AntiCurriculumPolicy,
    CurriculumPolicy,
    PacingPolicy,
)
from hardmine.sampling.policies.prune_easy import PruneEasyPolicy
from hardmine.sampling.policies.rank import RankPolicy
from hardmine.sampling.policies.rho_loss import IRREDUCIBLE_LOSS, RhoLossPolicy
from hardmine.sampling.policies.selective_backprop import SelectiveBackpropPolicy
from hardmine.sampling.policies.self_paced import SelfPacedPolicy
from hardmine.sampling.policies.topk_fraction import TopKFractionPolicy
from hardmine.sampling.policies.uniform import UniformPolicy


def build_policy(policy: str | Policy, **params: Any) -> Policy:
    """A Policy from a registered name (with keyword parameters, `guards=` included) or the object itself."""
    if isinstance(policy, Policy):
        if params:
            raise ValueError(f"parameters {sorted(params)} given with a policy object; set them on the object")
        return policy
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a registered name or a Policy, got {type(policy).__name__}")
    cls = POLICIES.lookup(policy)
    try:
        return cls(**params)
    except TypeError as error:
        raise TypeError(f"policy {policy!r}: {error}") from None


__all__ = ["IRREDUCIBLE_LOSS", "POLICIES", "AntiCurriculumPolicy", "BatchPolicy", "CandidatePolicy",
           "ClassBalancedPolicy", "CurriculumPolicy", "ImportancePolicy", "OnlineTopLossPolicy", "PacingPolicy",
           "Policy", "PriorityPolicy", "PruneEasyPolicy", "RankPolicy", "RhoLossPolicy", "SelectiveBackpropPolicy",
           "SelfPacedPolicy", "SubsetPolicy", "TopKFractionPolicy", "UniformPolicy", "build_policy"]


def _import_every_module() -> None:
    """Import every module of this package, so that a component in a new file registers without an edit here."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_every_module()
