"""Policies: how the score memory becomes sampling probabilities, registered under short names."""

from __future__ import annotations

from typing import Any

from hardmine.policies.base import Policy
from hardmine.policies.importance import ImportancePolicy
from hardmine.policies.uniform import UniformPolicy

POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (UniformPolicy, ImportancePolicy)}


def build_policy(policy: str | Policy, **params: Any) -> Policy:
    """A Policy from a registered name (with keyword parameters) or the object itself."""
    if isinstance(policy, Policy):
        if params:
            raise ValueError(f"parameters {sorted(params)} given with a policy object; set them on the object")
        return policy
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a registered name or a Policy, got {type(policy).__name__}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {sorted(POLICIES)}, got {policy!r}")
    return POLICIES[policy](**params)


__all__ = ["POLICIES", "ImportancePolicy", "Policy", "UniformPolicy", "build_policy"]
