"""class_balanced: every class drawn equally often (or at n_c^power), with weights 1 and the fewest repeats."""

import numpy as np
import pytest

from hardmine import ClassBalance, ClassBalancedPolicy, HardExampleSampler, ScoreMemory, build_policy

LABELS = np.repeat([0, 1, 2, 3], [700, 200, 70, 30])  # long-tailed: 700 / 200 / 70 / 30


def drawn(policy, epochs=1, labels=LABELS, batch_size=50):
    memory = ScoreMemory(labels.size, labels=labels)
    sampler = HardExampleSampler(memory, batch_size, policy=policy, seed=0)
    batches, weights = [], []
    for _ in range(epochs):
        for batch in sampler:
            batches.append(batch)
            weights.append(sampler.weights(batch).numpy())
            sampler.update(batch, np.ones(batch.size))
    return np.concatenate(batches), np.concatenate(weights), sampler


def test_every_class_takes_an_equal_share_of_an_epoch_of_n_draws():
    idx, weights, sampler = drawn(ClassBalancedPolicy())
    assert idx.size == LABELS.size and len(sampler) == LABELS.size // 50  # an epoch costs what uniform's does
    assert np.bincount(LABELS[idx]).tolist() == [250, 250, 250, 250]
    assert np.all(weights == 1.0)  # no correction back to uniform: the distribution is meant to change
    per_sample = np.bincount(idx, minlength=LABELS.size)
    assert set(per_sample[LABELS == 3]) == {8, 9}  # 250 slots over 30 samples: each 8 times, 10 of them once more
    assert per_sample[LABELS == 0].max() == 1 and (per_sample[LABELS == 0] == 1).sum() == 250  # a subset, no repeat


@pytest.mark.parametrize("power", [0.5, 1.0])
def test_power_gives_class_c_a_share_proportional_to_n_c_to_the_power(power):
    idx, _, _ = drawn(ClassBalancedPolicy(power=power))
    counts = np.bincount(LABELS).astype(float)
    expected = counts**power / (counts**power).sum() * LABELS.size
    assert np.abs(np.bincount(LABELS[idx]) - expected).max() < 1.0


def test_epochs_differ_and_the_same_seed_repeats_them():
    a, _, _ = drawn(ClassBalancedPolicy(), epochs=2)
    b, _, _ = drawn(build_policy("class_balanced"), epochs=2)
    assert np.array_equal(a, b)
    first, second = a[: LABELS.size], a[LABELS.size:]
    assert not np.array_equal(np.sort(first), np.sort(second))  # another subset of the frequent class


def test_a_class_absent_from_the_data_gets_no_share():
    labels = np.repeat([0, 2], [90, 10])  # class 1 has no sample
    idx, _, _ = drawn(ClassBalancedPolicy(), labels=labels, batch_size=10)
    assert np.bincount(labels[idx]).tolist() == [50, 0, 50]


def test_needs_labels_and_a_power_in_range():
    with pytest.raises(ValueError, match="'class_balanced' policy needs class labels"):
        HardExampleSampler(ScoreMemory(10), 5, policy=ClassBalancedPolicy())
    with pytest.raises(ValueError, match="power must be in \\[0.0, 1.0\\], got 2.0"):
        ClassBalancedPolicy(power=2.0)


def test_a_class_balance_guard_of_the_same_power_changes_nothing():
    alone, _, _ = drawn(ClassBalancedPolicy())
    guarded, _, _ = drawn(build_policy("class_balanced", guards=[ClassBalance()]))
    assert np.array_equal(alone, guarded)
