"""selective_backprop: keep probability percentile^beta, weights that average over the kept samples."""

import numpy as np
import torch

import hardmine as hm
from hardmine import HardExampleSampler, ScoreMemory, SelectiveBackpropPolicy


def test_keeps_about_a_half_with_beta_one_and_always_the_hardest():
    n = 4000
    memory = ScoreMemory(n)
    sampler = HardExampleSampler(memory, batch_size=100, policy=SelectiveBackpropPolicy(beta=1.0), seed=0)
    rng = np.random.default_rng(0)
    kept_by_quartile = np.zeros(4)
    for batch in sampler:
        losses = rng.random(batch.size)
        sampler.update(batch, losses)
        w = sampler.weights(batch).numpy()
        assert w[np.argmax(losses)] > 0 or losses.max() < 0.99
        np.testing.assert_allclose(w[w > 0], batch.size / (w > 0).sum(), rtol=1e-6)
        kept_by_quartile += np.bincount(np.minimum((losses * 4).astype(int), 3), weights=w > 0, minlength=4)
    assert abs(sampler.stats()["keep_ratio"] - 0.5) < 0.03
    assert kept_by_quartile[3] > 2.5 * kept_by_quartile[0]  # hard samples are kept far more often


def test_reduce_with_its_weights_is_the_mean_over_kept_samples():
    memory = ScoreMemory(8)
    sampler = HardExampleSampler(memory, batch_size=8, policy=SelectiveBackpropPolicy(beta=2.0), seed=0)
    batch = next(iter(sampler))
    losses = torch.linspace(0.1, 1.0, 8)
    sampler.update(batch, losses)
    w = sampler.weights(batch)
    assert torch.isclose(hm.reduce(losses, w), losses[w > 0].mean())


def test_noise_guard_suspects_compete_with_the_median_not_their_loss():
    n = 2000
    suspects = np.arange(n) % 10 == 0
    losses = np.where(suspects, 8.0, np.linspace(0.01, 1.0, n))  # suspects: persistently the highest loss

    def keep_rate(guards):
        memory = ScoreMemory(n, labels=np.arange(n) % 2)
        policy = SelectiveBackpropPolicy(beta=2.0, guards=guards)
        sampler = HardExampleSampler(memory, batch_size=100, policy=policy, seed=0)
        kept = np.zeros(n)
        for _ in range(4):
            for batch in sampler:
                sampler.update(batch, losses[batch])
                kept[batch] += sampler.weights(batch).numpy() > 0
        return kept[suspects].mean() / 4

    assert keep_rate([]) > 0.95
    assert keep_rate([hm.NoiseGuard(min_visits=1)]) < 0.6
