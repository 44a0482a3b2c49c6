"""RefreshCallback: the stalest samples are re-scored on schedule, and age statistics show it."""

import numpy as np
import pytest

from hardmine import HardExampleSampler, ImportancePolicy, ScoreMemory
from hardmine.sampling.refresh import RefreshCallback


def test_refresh_rescoring_keeps_every_score_young():
    n = 500
    memory = ScoreMemory(n)
    policy = ImportancePolicy(alpha=3.0, mix=0.0, eps=1e-9)
    sampler = HardExampleSampler(memory, batch_size=10, num_batches=200, policy=policy, seed=0)
    calls = []
    def score_fn(idx):
        calls.append((idx, memory.get("last_step", idx), memory.get("last_step")))
        return np.where(idx < 5, 50.0, 0.01)

    refresh = RefreshCallback(score_fn, every=10, size=50)
    for batch in sampler:
        sampler.update(batch, np.where(batch < 5, 50.0, 0.01))
        refresh(sampler)
    assert 20 <= len(calls) <= 22  # every 10 updates, its own included
    for idx, ages, all_ages in calls:  # the 50 stalest (never seen: -1) of the moment
        assert idx.size == 50 and ages.max() <= np.sort(all_ages)[49]
    stats = sampler.stats()
    assert stats["fraction_seen"] == 1.0
    assert stats["age_max"] < 150  # without refresh, easy samples never drawn again would age to ~200 steps
    unrefreshed = HardExampleSampler(ScoreMemory(n), batch_size=10, num_batches=200, policy=ImportancePolicy(
        alpha=3.0, mix=0.0, eps=1e-9), seed=0)
    for batch in unrefreshed:
        unrefreshed.update(batch, np.where(batch < 5, 50.0, 0.01))
    assert unrefreshed.stats()["fraction_seen"] < 0.5  # hard-first sampling alone leaves most samples unscored


def test_refresh_argument_errors():
    with pytest.raises(TypeError, match="score_fn"):
        RefreshCallback(3, every=1, size=1)
    with pytest.raises(ValueError, match="every"):
        RefreshCallback(lambda i: i, every=0, size=1)
