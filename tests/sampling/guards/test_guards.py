"""Guards: the noise guard on real flipped labels, class quotas, coverage, weight caps, and their errors."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

import hardmine as hm
from hardmine import ClassBalance, CoverageGuard, HardExampleSampler, ImportancePolicy, NoiseGuard, ScoreMemory


def train_digits_with_flipped_labels(guard: NoiseGuard, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """An MLP on scikit-learn's digits with 20% of the labels flipped to another class; returns the
    guard's suspects and the flipped mask."""
    torch.manual_seed(0)
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    rng = np.random.default_rng(0)
    flipped = rng.random(y.size) < 0.2
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, flipped.sum())) % 10
    targets = torch.tensor(noisy)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    memory = ScoreMemory(y.size, labels=noisy)
    sampler = HardExampleSampler(memory, 64, policy=ImportancePolicy(guards=[guard]), seed=0)
    for _ in range(epochs):
        for idx in sampler:
            logits = model(x[idx])
            per_sample = F.cross_entropy(logits, targets[idx], reduction="none")
            sampler.update(idx, per_sample.detach(), **hm.scores.signals(logits.detach(), targets[idx]))
            loss = hm.reduce(per_sample, sampler.weights(idx))
            opt.zero_grad()
            loss.backward()
            opt.step()
    sampler.set_epoch(epochs)
    next(iter(sampler))  # the guard decides its suspects at the next epoch's start
    return guard.suspects(), flipped


@pytest.mark.parametrize("method, precision, recall", [("loss", 0.85, 0.8), ("aum", 0.6, 0.9)])
def test_noise_guard_finds_most_flipped_labels_on_digits(method, precision, recall):
    suspects, flipped = train_digits_with_flipped_labels(NoiseGuard(method=method), epochs=5)
    found = flipped[suspects].sum()
    assert found / suspects.size >= precision  # measured: loss 0.93, aum 0.70
    assert found / flipped.sum() >= recall  # measured: loss 0.88, aum 1.00


def test_noise_guard_gives_suspects_the_median_difficulty_and_lists_them():
    memory = ScoreMemory(6, labels=[0, 1, 0, 1, 0, 1])
    for _ in range(3):
        memory.update(np.arange(6), np.array([0.1, 0.2, 0.3, 0.4, 5.0, 0.5]))
    guard = NoiseGuard(method="loss", min_visits=3)
    policy = ImportancePolicy(alpha=1.0, eps=1e-9, guards=[guard])
    policy.start_epoch(0, memory)
    assert guard.suspects().tolist() == [4]  # ema loss 5.0 > ln 2
    np.testing.assert_allclose(policy.priorities(memory), [0.1, 0.2, 0.3, 0.4, 0.3, 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="needs margins"):
        ImportancePolicy(guards=[NoiseGuard(method="aum")]).start_epoch(1, memory)


@pytest.mark.parametrize("power, rare_share", [(0.0, 0.5), (1.0, 0.05)])
def test_class_balance_gives_a_rare_class_its_quota(power, rare_share):
    labels = np.array([0] * 950 + [1] * 50)
    memory = ScoreMemory(1000, labels=labels)
    memory.update(np.arange(1000), np.r_[np.full(950, 3.0), np.full(50, 0.1)])  # the frequent class looks hard
    policy = ImportancePolicy(mix=0.0, guards=[ClassBalance(power=power)])
    sampler = HardExampleSampler(memory, batch_size=1000, num_batches=20, policy=policy, seed=0)
    drawn = np.concatenate(list(sampler))
    assert abs((labels[drawn] == 1).mean() - rare_share) < 0.02
    assert abs(sampler.stats()["class_share/1"] - rare_share) < 0.02 and sampler.stats()["data_share/1"] == 0.05
    unguarded = HardExampleSampler(memory, batch_size=1000, num_batches=20, policy=ImportancePolicy(mix=0.0))
    assert (labels[np.concatenate(list(unguarded))] == 1).mean() < 0.003  # crowded out without the guard
    with pytest.raises(ValueError, match="needs class labels"):
        ImportancePolicy(guards=[ClassBalance()]).start_epoch(0, ScoreMemory(5))


def test_coverage_draws_every_sample_at_least_once_every_k_epochs(run_steps):
    n = 200
    memory = ScoreMemory(n)
    memory.update(np.arange(n), np.r_[np.full(10, 100.0), np.full(n - 10, 1e-6)])
    policy = ImportancePolicy(alpha=2.0, mix=0.0, eps=1e-9, guards=[CoverageGuard(mix=0.0, every=2)])
    sampler = HardExampleSampler(memory, batch_size=20, policy=policy, seed=0)
    epochs = []
    for _ in range(6):
        drawn = np.concatenate(list(sampler))
        for batch_start in range(0, drawn.size, 20):
            batch = drawn[batch_start: batch_start + 20]
            memory.update(batch, np.where(batch < 10, 100.0, 1e-6))
        epochs.append(set(drawn.tolist()))
    for a, b in zip(epochs, epochs[1:]):
        assert a | b == set(range(n))
    unguarded = HardExampleSampler(memory, batch_size=20, policy=ImportancePolicy(alpha=2.0, mix=0.0, eps=1e-9))
    assert len(set(np.concatenate(list(unguarded)).tolist())) < 50


def test_coverage_mix_is_a_floor_for_priority_policies():
    policy = ImportancePolicy(mix=0.05, guards=[CoverageGuard(mix=0.3)])
    assert policy.floor == 0.3


def test_weight_cap_clips_importance_weights():
    memory = ScoreMemory(100)
    memory.update(np.arange(100), np.r_[np.full(99, 1e-4), 10.0])
    policy = ImportancePolicy(alpha=1.0, beta=1.0, mix=0.01, normalize="none", guards=[hm.WeightCap(3.0)])
    sampler = HardExampleSampler(memory, batch_size=500, policy=policy, seed=0)
    batch = next(iter(sampler))
    w = sampler.weights(batch).numpy()
    assert w.max() == pytest.approx(3.0) and (w <= 3.0 + 1e-6).all()
    with pytest.raises(ValueError, match="max_weight"):
        hm.WeightCap(0.0)


@pytest.mark.parametrize(
    "build, match",
    [(lambda: NoiseGuard(method="vibes"), "method"), (lambda: NoiseGuard(min_visits=0), "min_visits"),
     (lambda: ClassBalance(power=2.0), "power"), (lambda: CoverageGuard(mix=1.5), "mix"),
     (lambda: CoverageGuard(every=0), "every")],
)
def test_guard_parameter_errors(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()
