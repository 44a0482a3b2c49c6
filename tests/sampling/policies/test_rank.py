"""Rank-based selection: draw frequencies follow exp(-rank ln(s) / N), whatever the scale of the scores."""

import math

import numpy as np

from hardmine import HardExampleSampler, RankPolicy, ScoreMemory


def test_draws_follow_the_rank_distribution_and_ignore_score_scale():
    n = 30
    scores = np.exp(np.linspace(0, 20, n))[::-1]  # sample 0 is the hardest; scores span 9 orders of magnitude
    memory = ScoreMemory(n)
    memory.update(np.arange(n), scores)
    sampler = HardExampleSampler(memory, batch_size=1000, num_batches=200, policy=RankPolicy(pressure=50.0), seed=0)
    counts = np.bincount(np.concatenate(list(sampler)), minlength=n)
    p = np.exp(-np.arange(n) * math.log(50.0) / n)
    expected = counts.sum() * p / p.sum()
    stat = ((counts - expected) ** 2 / expected).sum()
    assert stat < (n - 1) + 3.72 * math.sqrt(2 * (n - 1))
    assert counts[0] / counts[-1] > 30  # the hardest about pressure times as often as the easiest


def test_a_rescored_sample_is_ranked_against_the_epoch_snapshot():
    memory = ScoreMemory(4)
    memory.update(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    policy = RankPolicy(pressure=16.0)
    policy.start_epoch(0, memory)
    memory.update(np.array([0]), np.array([10.0]))  # now above every snapshot value: rank 0, as sample 3
    p = policy.priorities(memory, np.array([0, 3, 1, 2]))
    np.testing.assert_allclose(p, [1.0, 1.0, np.exp(-2 * math.log(16.0) / 4), np.exp(-math.log(16.0) / 4)])
