"""The registry, and the importance policy's priorities, weights, schedules and state."""

import numpy as np
import pytest

from hardmine import POLICIES, ImportancePolicy, RankPolicy, ScoreMemory, UniformPolicy, build_policy
from hardmine.sampling.schedules import Linear


def test_registry_builds_by_name_and_passes_objects_through():
    assert set(POLICIES) >= {"uniform", "importance"}
    assert isinstance(build_policy("importance", alpha=0.5), ImportancePolicy)
    policy = UniformPolicy()
    assert build_policy(policy) is policy
    with pytest.raises(ValueError, match="parameters"):
        build_policy(policy, alpha=1.0)
    with pytest.raises(TypeError, match="policy must be"):
        build_policy(3)
    with pytest.raises(TypeError, match="policy 'rank'.*unexpected keyword argument 'alpha'"):
        build_policy("rank", alpha=1.0)


def test_importance_priorities_follow_the_formula_and_unseen_get_the_largest_score():
    memory = ScoreMemory(4)
    memory.update(np.array([0, 1, 2]), np.array([0.5, 2.0, -1.0]))
    policy = ImportancePolicy(alpha=2.0, eps=0.1)
    policy.start_epoch(0, memory)
    expected = (np.array([0.5, 2.0, 0.0, 2.0]) + 0.1) ** 2.0
    np.testing.assert_allclose(policy.priorities(memory), expected)
    np.testing.assert_allclose(policy.priorities(memory, np.array([3, 0])), expected[[3, 0]])


def test_importance_uses_the_ema_when_asked():
    memory = ScoreMemory(2, ema_decay=0.5)
    memory.update(np.array([0, 1]), np.array([1.0, 1.0]))
    memory.update(np.array([0]), np.array([3.0]))
    policy = ImportancePolicy(alpha=1.0, eps=1e-9, statistic="ema")
    np.testing.assert_allclose(policy.priorities(memory), [2.0, 1.0], rtol=1e-6)


def test_importance_weights_correct_by_beta_and_max_scales_by_the_batch_maximum():
    policy = ImportancePolicy(beta=0.5, normalize="max")
    w = policy.weights(np.array([0.1, 0.4, 0.025]), num_samples=10)
    np.testing.assert_allclose(w, np.array([1.0, 0.5, 2.0]) / 2.0)
    unbiased = ImportancePolicy(beta=1.0)
    np.testing.assert_allclose(unbiased.weights(np.array([0.1, 0.4, 0.025]), 10), [1.0, 0.25, 4.0])


def test_the_default_weights_are_unbiased():
    """normalize="none" by default: under the draw distribution the weights average 1 (the uniform step size)."""
    assert ImportancePolicy().normalize == "none" and RankPolicy().normalize == "none"
    prob = np.array([0.1, 0.4, 0.025, 0.475])
    w = ImportancePolicy(beta=1.0).weights(prob, num_samples=4)
    assert float((prob * w).sum()) == pytest.approx(1.0)


def test_unnormalised_weights_make_the_weighted_mean_loss_unbiased():
    rng = np.random.default_rng(0)
    losses = rng.exponential(size=50)
    memory = ScoreMemory(50)
    memory.update(np.arange(50), losses)
    policy = ImportancePolicy(alpha=1.0, beta=1.0, mix=0.1, normalize="none")
    p = policy.priorities(memory)
    prob = 0.9 * p / p.sum() + 0.1 / 50
    draws = rng.choice(50, size=400_000, p=prob)
    estimate = np.mean(policy.weights(prob[draws], 50) * losses[draws])
    assert abs(estimate - losses.mean()) < 0.01 * losses.mean()
    assert abs(np.mean(losses[draws]) - losses.mean()) > 0.2 * losses.mean()  # without the weights: biased
    assert np.array_equal(UniformPolicy().weights(np.array([0.3, 0.7]), 2), [1.0, 1.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [({"alpha": -1}, "alpha"), ({"beta": 1.5}, "beta"), ({"mix": -0.1}, "mix"), ({"eps": 0}, "eps"),
     ({"statistic": "loss"}, "statistic"), ({"alpha": "2"}, "alpha"), ({"normalize": "sum"}, "normalize")],
)
def test_importance_parameter_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ImportancePolicy(**kwargs)


def test_state_round_trips_and_bad_state_changes_nothing():
    memory = ScoreMemory(3)
    memory.update(np.array([1]), np.array([4.0]))
    policy = ImportancePolicy(alpha=0.7, mix=0.3)
    policy.start_epoch(0, memory)
    restored = ImportancePolicy()
    with pytest.raises(ValueError, match=r"alpha: saved 0.7, constructed with 1.0; mix: saved 0.3, constructed "
                                         r"with 0.1.*use_saved_config=True"):
        restored.load_state_dict(policy.state_dict())  # the saved arguments do not silently win
    restored.load_state_dict(policy.state_dict(), use_saved_config=True)
    assert restored.state_dict() == policy.state_dict()
    np.testing.assert_array_equal(restored.priorities(memory), policy.priorities(memory))
    bad = policy.state_dict()
    bad["config"]["beta"] = 7.0
    with pytest.raises(ValueError, match="beta"):
        restored.load_state_dict(bad, use_saved_config=True)
    assert restored.state_dict() == policy.state_dict()
    with pytest.raises(ValueError, match="not a 'uniform' policy"):
        UniformPolicy().load_state_dict(policy.state_dict())


def test_alpha_and_beta_follow_their_schedules():
    memory = ScoreMemory(3)
    memory.update(np.arange(3), np.array([0.0, 1.0, 3.0]))
    policy = ImportancePolicy(alpha=Linear(0.0, 2.0, epochs=4), beta=Linear(0.4, 1.0, epochs=2), eps=1.0)
    policy.start_epoch(0, memory)
    np.testing.assert_allclose(policy.priorities(memory), [1.0, 1.0, 1.0])
    policy.start_epoch(2, memory)
    np.testing.assert_allclose(policy.priorities(memory), [1.0, 2.0, 4.0])
    assert policy.value("beta") == 1.0
