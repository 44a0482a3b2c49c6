"""What every policy shares: warm-up, stale scores, the registry's errors."""

import numpy as np
import pytest

from hardmine import POLICIES, HardExampleSampler, ImportancePolicy, ScoreMemory, build_policy


@pytest.mark.parametrize("name", sorted(set(POLICIES) - {"uniform"}))
def test_warmup_epochs_are_plain_shuffles(name):
    n = 60
    memory = ScoreMemory(n)
    memory.update(np.arange(n), np.linspace(0, 5, n))
    sampler = HardExampleSampler(memory, batch_size=6, policy=build_policy(name, warmup=2), seed=0)
    for _ in range(2):
        drawn = np.concatenate(list(sampler))
        assert sorted(drawn.tolist()) == list(range(n))


def test_stale_scores_count_as_unseen_and_are_boosted():
    memory = ScoreMemory(4)
    memory.update(np.arange(4), np.array([1.0, 2.0, 3.0, 0.5]))
    for _ in range(10):
        memory.update(np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]))
    policy = ImportancePolicy(alpha=1.0, eps=1e-9, stale_after=5)
    policy.start_epoch(0, memory)
    np.testing.assert_allclose(policy.priorities(memory), [1.0, 2.0, 3.0, 3.0])
    fresh = ImportancePolicy(alpha=1.0, eps=1e-9)
    fresh.start_epoch(0, memory)
    np.testing.assert_allclose(fresh.priorities(memory), [1.0, 2.0, 3.0, 0.5])
