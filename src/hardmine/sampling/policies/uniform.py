"""The uniform policy: a seeded shuffle per epoch, every sample once; the baseline every strategy is compared to."""

from __future__ import annotations

from hardmine.sampling.policies.base import SubsetPolicy


class UniformPolicy(SubsetPolicy):
    """Plain shuffling without replacement (what `DataLoader(shuffle=True)` does); importance weights are 1.

    The base of in-batch mining: an in-batch loss over its batches uses `HardExampleSampler.selection`, so the
    guards it calls are the weight and per-batch selection hooks.
    """

    name = "uniform"
    calls = frozenset({"adjust_weights", "adjust_selection"})
