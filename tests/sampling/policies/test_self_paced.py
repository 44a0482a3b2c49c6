"""self_paced: a pass over the samples below the growing threshold."""

import numpy as np

from hardmine import HardExampleSampler, ScoreMemory, SelfPacedPolicy
from hardmine.sampling.schedules import Step


def test_admits_samples_below_a_growing_threshold_and_every_unseen_one():
    n = 100
    memory = ScoreMemory(n)
    memory.update(np.arange(90), np.linspace(0.0, 9.0, 90))  # samples 90..99 never scored
    policy = SelfPacedPolicy(threshold=Step(1.0, 2.0), min_fraction=0.05)
    sampler = HardExampleSampler(memory, batch_size=5, policy=policy, seed=0)
    for threshold in (1.0, 2.0, 4.0, 8.0):
        drawn = set(np.concatenate(list(sampler)).tolist())
        expected = set(np.flatnonzero(np.linspace(0.0, 9.0, 90) < threshold).tolist()) | set(range(90, 100))
        assert drawn == expected


def test_min_fraction_when_nothing_qualifies():
    memory = ScoreMemory(20)
    memory.update(np.arange(20), np.arange(20, dtype=float) + 5.0)
    policy = SelfPacedPolicy(threshold=1.0, min_fraction=0.25)
    policy.start_epoch(0, memory)
    subset, _ = policy.epoch_subset(memory, np.random.default_rng(0))
    assert subset.tolist() == [0, 1, 2, 3, 4]
