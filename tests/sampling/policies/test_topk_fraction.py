"""topk_fraction: each epoch is a pass over the hardest fraction, narrowing on its schedule."""

import numpy as np

from hardmine import HardExampleSampler, ScoreMemory, TopKFractionPolicy
from hardmine.sampling.guards import ClassBalance
from hardmine.sampling.schedules import Linear


def test_epoch_covers_exactly_the_hardest_fraction_on_its_schedule():
    n = 100
    memory = ScoreMemory(n)
    memory.update(np.arange(n), np.arange(n, dtype=float))
    policy = TopKFractionPolicy(fraction=Linear(0.5, 0.2, epochs=3))
    sampler = HardExampleSampler(memory, batch_size=10, policy=policy, seed=0)
    for epoch, fraction in enumerate([0.5, 0.4, 0.3, 0.2, 0.2]):
        drawn = np.concatenate(list(sampler))
        assert sampler.epoch == epoch and len(sampler) == round(fraction * n) // 10
        assert sorted(drawn.tolist()) == list(range(n - round(fraction * n), n))


def test_with_class_balance_each_class_keeps_its_share():
    labels = np.array([0] * 90 + [1] * 10)
    memory = ScoreMemory(100, labels=labels)
    memory.update(np.arange(100), np.r_[np.full(90, 5.0), np.full(10, 1.0)] + np.arange(100) * 1e-3)
    subset, _ = _subset(TopKFractionPolicy(fraction=0.2, guards=[ClassBalance()]), memory)
    assert (labels[subset] == 1).sum() == 2 and (labels[subset] == 0).sum() == 18
    subset, _ = _subset(TopKFractionPolicy(fraction=0.2), memory)
    assert (labels[subset] == 1).sum() == 0  # without the guard the frequent class's hard samples crowd it out


def _subset(policy, memory):
    policy.start_epoch(0, memory)
    return policy.epoch_subset(memory, np.random.default_rng(0))
