"""The uniform policy: a seeded shuffle per epoch, every sample once; the baseline every strategy is compared to."""

from __future__ import annotations

from hardmine.sampling.policies.base import Policy


class UniformPolicy(Policy):
    """Plain shuffling without replacement (what `DataLoader(shuffle=True)` does); importance weights are 1."""

    name = "uniform"
    kind = "subset"
