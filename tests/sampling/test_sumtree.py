"""SumTree: the distribution it samples, its updates, its memory, and its refusals of bad input."""

import numpy as np
import pytest

from hardmine import SumTree


def chi_square_ok(counts: np.ndarray, probabilities: np.ndarray) -> bool:
    """Pearson's test at a 1e-4 false-alarm level (normal approximation of the chi-square quantile)."""
    expected = counts.sum() * probabilities
    mask = expected > 0
    stat = (((counts - expected) ** 2)[mask] / expected[mask]).sum()
    dof = mask.sum() - 1
    return stat <= dof + 3.72 * np.sqrt(2 * dof)


@pytest.mark.parametrize("n", [1, 7, 16, 17, 1000, 5003])
def test_draw_frequencies_match_priorities(n):
    rng = np.random.default_rng(n)
    priorities = rng.random(n) * (rng.random(n) < 0.7)
    priorities[0] = 1.0
    tree = SumTree(priorities)
    draws = np.concatenate([tree.sample(4096, rng) for _ in range(50)])
    counts = np.bincount(draws, minlength=n)
    assert counts[priorities == 0].sum() == 0
    assert chi_square_ok(counts, priorities / priorities.sum())


def test_chi_square_helper_rejects_a_wrong_distribution():
    rng = np.random.default_rng(0)
    counts = np.bincount(rng.integers(0, 10, 100_000), minlength=10)
    assert chi_square_ok(counts, np.full(10, 0.1))
    assert not chi_square_ok(counts, np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum())


def test_update_changes_the_distribution_and_duplicates_take_the_last_value():
    tree = SumTree(np.ones(100))
    tree.update(np.array([3, 5, 3, 99]), np.array([7.0, 0.0, 2.0, 0.0]))
    assert tree.get(np.array([3, 5, 99])).tolist() == [2.0, 0.0, 0.0]
    assert tree.total() == 97 + 2
    draws = tree.sample(100_000, np.random.default_rng(1))
    counts = np.bincount(draws, minlength=100)
    assert counts[5] == counts[99] == 0
    expected = tree.get(np.arange(100)) / tree.total()
    assert chi_square_ok(counts, expected)


def test_updated_tree_equals_a_fresh_build_bit_for_bit():
    rng = np.random.default_rng(2)
    tree = SumTree(rng.random(10_000))
    for _ in range(30):
        idx = rng.integers(0, 10_000, rng.integers(1, 3000))
        tree.update(idx, rng.random(idx.size) * 10 ** rng.uniform(-6, 6, idx.size))
    fresh = SumTree(tree.priorities().copy())
    assert np.array_equal(tree._tree, fresh._tree)
    assert tree.total() == fresh.total()


def test_same_generator_state_same_draws():
    tree = SumTree(np.arange(1, 101, dtype=float))
    a = tree.sample(64, np.random.default_rng(5))
    b = tree.sample(64, np.random.default_rng(5))
    assert a.dtype == np.int64 and np.array_equal(a, b)


def test_extreme_ranges_never_draw_a_zero_priority_leaf():
    priorities = np.zeros(4096)
    priorities[::97] = 10.0 ** np.linspace(-30, 30, priorities[::97].size)
    tree = SumTree(priorities)
    draws = tree.sample(200_000, np.random.default_rng(3))
    assert (priorities[draws] > 0).all()


def test_memory_is_under_twelve_bytes_per_sample_at_scale():
    n = 10_000_000
    tree = SumTree(np.ones(n, dtype=np.float32))
    assert tree.nbytes / n < 12
    assert tree.total() == n
    assert tree.sample(8, np.random.default_rng(0)).max() < n


@pytest.mark.parametrize(
    "priorities, error",
    [
        (np.array([1.0, -1.0]), ValueError),
        (np.array([1.0, np.nan]), ValueError),
        (np.array([1.0, np.inf]), ValueError),
        (np.array([1e39]), ValueError),
        (np.array([]), ValueError),
        (np.ones((2, 2)), ValueError),
        (np.array(["a"]), TypeError),
    ],
)
def test_bad_priorities_at_construction(priorities, error):
    with pytest.raises(error, match="priorities"):
        SumTree(priorities)


@pytest.mark.parametrize(
    "indices, values, match",
    [
        (np.array([0, 10]), np.array([1.0, 1.0]), "out of range"),
        (np.array([-1]), np.array([1.0]), "out of range"),
        (np.array([0.0]), np.array([1.0]), "integers"),
        (np.array([0, 1]), np.array([1.0]), "length"),
        (np.array([], dtype=np.int64), np.array([]), "empty"),
        (np.array([0, 1]), np.array([1.0, -2.0]), "non-negative"),
        (np.array([0, 1]), np.array([1.0, np.nan]), "non-finite"),
    ],
)
def test_bad_update_raises_and_changes_nothing(indices, values, match):
    tree = SumTree(np.arange(10, dtype=float))
    before = tree._tree.copy(), tree.priorities().copy()
    with pytest.raises((ValueError, TypeError), match=match):
        tree.update(indices, values)
    assert np.array_equal(tree._tree, before[0]) and np.array_equal(tree.priorities(), before[1])


def test_sample_refuses_bad_arguments_and_all_zero_priorities():
    tree = SumTree(np.ones(4))
    with pytest.raises(ValueError, match="batch_size"):
        tree.sample(0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="generator"):
        tree.sample(4, 0)
    tree.update(np.arange(4), np.zeros(4))
    with pytest.raises(ValueError, match="every priority is zero"):
        tree.sample(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="block_size"):
        SumTree(np.ones(4), block_size=12)
