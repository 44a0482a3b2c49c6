"""Policies: how the score memory becomes the next batches, registered under short names."""

from __future__ import annotations

from typing import Any

from hardmine.sampling.policies.base import Policy
from hardmine.sampling.policies.importance import ImportancePolicy
from hardmine.sampling.policies.pacing import AntiCurriculumPolicy, CurriculumPolicy, PacingPolicy
from hardmine.sampling.policies.prune_easy import PruneEasyPolicy
from hardmine.sampling.policies.rank import RankPolicy
from hardmine.sampling.policies.selective_backprop import SelectiveBackpropPolicy
from hardmine.sampling.policies.self_paced import SelfPacedPolicy
from hardmine.sampling.policies.topk_fraction import TopKFractionPolicy
from hardmine.sampling.policies.uniform import UniformPolicy

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls
    for cls in (UniformPolicy, ImportancePolicy, RankPolicy, TopKFractionPolicy, PruneEasyPolicy,
                SelectiveBackpropPolicy, SelfPacedPolicy, CurriculumPolicy, AntiCurriculumPolicy, PacingPolicy)
}


def build_policy(policy: str | Policy, **params: Any) -> Policy:
    """A Policy from a registered name (with keyword parameters, `guards=` included) or the object itself."""
    if isinstance(policy, Policy):
        if params:
            raise ValueError(f"parameters {sorted(params)} given with a policy object; set them on the object")
        return policy
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a registered name or a Policy, got {type(policy).__name__}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {policy!r}")
    try:
        return POLICIES[policy](**params)
    except TypeError as error:
        raise TypeError(f"policy {policy!r}: {error}") from None


__all__ = ["POLICIES", "AntiCurriculumPolicy", "CurriculumPolicy", "ImportancePolicy", "PacingPolicy", "Policy",
           "PruneEasyPolicy", "RankPolicy", "SelectiveBackpropPolicy", "SelfPacedPolicy", "TopKFractionPolicy",
           "UniformPolicy", "build_policy"]
