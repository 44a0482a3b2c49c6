"""class_balance does what it says with every policy that takes it: on a long-tailed memory whose frequent class
looks hardest, each class is drawn about equally often, and importance weights correct toward the
class-balanced distribution (not back to uniform, which undid the guard)."""

import numpy as np
import pytest

from hardmine import ClassBalance, HardExampleSampler, ImportancePolicy, ScoreMemory, build_policy
from hardmine.sampling.policies import POLICIES
from hardmine.testing import policy_params

LABELS = np.repeat([0, 1, 2], [800, 150, 50])
N = LABELS.size
ACCEPTING = sorted(name for name in POLICIES if POLICIES[name].affected_by(ClassBalance))


def long_tailed_memory():
    memory = ScoreMemory(N, labels=LABELS)
    rng = np.random.default_rng(0)
    memory.update(np.arange(N), np.where(LABELS == 0, 2.0, 0.5) + rng.random(N))  # the frequent class looks hard
    return memory


def draw(policy, epochs=3, batch_size=100):
    memory = long_tailed_memory()
    sampler = HardExampleSampler(memory, batch_size, policy=policy, seed=0)
    batches, weights = [], []
    for _ in range(epochs):
        for batch in sampler:
            batches.append(batch)
            weights.append(sampler.weights(batch).numpy().astype(np.float64))
    return np.concatenate(batches), np.concatenate(weights)


def test_the_pairings_cover_priority_and_subset_policies():
    assert {"importance", "rank", "prune_easy", "topk_fraction", "self_paced", "class_balanced"} <= set(ACCEPTING)
    assert "selective_backprop" not in ACCEPTING and "uniform" not in ACCEPTING  # refused: they call no hook of it


@pytest.mark.parametrize("name", ACCEPTING)
def test_each_class_is_drawn_about_equally_often(name):
    params = {**policy_params(name), **({"mix": 0.0} if "mix" in POLICIES[name]().__dict__ else {})}
    idx, _ = draw(build_policy(name, **params, guards=[ClassBalance()]))
    counts = np.bincount(LABELS[idx], minlength=3)
    # self-paced learning admits easy samples only, and every sample of class 0 looks hard here: the guard
    # balances the classes the policy let into the epoch (it never draws what the policy left out)
    present = [1, 2] if name == "self_paced" else [0, 1, 2]
    assert np.flatnonzero(counts).tolist() == present
    shares = counts[present] / idx.size
    assert np.abs(shares - 1 / len(present)).max() < 0.03, shares


def test_without_the_guard_the_hard_frequent_class_crowds_out_the_rare_one():
    idx, _ = draw(ImportancePolicy(mix=0.0))
    assert (LABELS[idx] == 2).mean() < 0.03  # below its 5% share of the data


@pytest.mark.parametrize("name", ["prune_easy", "topk_fraction"])
def test_a_subset_policy_keeps_its_epoch_size_and_its_weights(name):
    policy = build_policy(name, guards=[ClassBalance()])
    memory = long_tailed_memory()
    policy.start_epoch(0, memory)
    own, own_weights = policy.epoch_subset(memory, np.random.default_rng(1))
    subset, weights = policy.guarded_subset(memory, np.random.default_rng(1))
    assert subset.size == own.size and np.all(np.diff(subset) >= 0)
    assert set(subset.tolist()) <= set(own.tolist())  # resampled from the policy's own choice
    lookup = dict(zip(own.tolist(), own_weights.tolist()))
    assert all(lookup[i] == w for i, w in zip(subset.tolist(), weights.tolist()))


def test_importance_weights_correct_toward_the_balanced_distribution():
    # beta = 1, no normalisation: sum of weights per class estimates each class's mass under the target distribution
    idx, weights = draw(ImportancePolicy(beta=1.0, normalize="none", guards=[ClassBalance()]), epochs=10)
    mass = np.bincount(LABELS[idx], weights=weights, minlength=3) / weights.sum()
    assert np.abs(mass - 1 / 3).max() < 0.03, mass  # balanced; correcting to uniform gave the data's 0.8/0.15/0.05
    half = ClassBalance(power=1.0)  # power 1: the quotas are the data's shares, and so is the corrected mass
    idx, weights = draw(ImportancePolicy(beta=1.0, normalize="none", guards=[half]), epochs=10)
    mass = np.bincount(LABELS[idx], weights=weights, minlength=3) / weights.sum()
    assert np.abs(mass - [0.8, 0.15, 0.05]).max() < 0.03, mass


def test_within_a_class_the_hard_samples_are_still_favoured():
    memory = long_tailed_memory()
    idx, _ = draw(ImportancePolicy(alpha=2.0, mix=0.0, guards=[ClassBalance()]), epochs=5)
    score = memory.get("score")
    frequent = idx[LABELS[idx] == 0]
    members = np.flatnonzero(LABELS == 0)
    assert score[frequent].mean() > score[members].mean() + 0.05  # mining within the class's equal share
