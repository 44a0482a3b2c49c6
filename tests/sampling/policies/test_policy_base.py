"""What every policy shares: warm-up, stale scores, the registry's errors."""

import numpy as np
import pytest

from hardmine import POLICIES, HardExampleSampler, ImportancePolicy, ScoreMemory, build_policy


@pytest.mark.parametrize("name", sorted(set(POLICIES) - {"uniform"}))
def test_warmup_epochs_are_plain_shuffles(name):
    n = 60
    memory = ScoreMemory(n, labels=np.arange(n) % 3)  # labels for class_balanced
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


def test_a_policy_asks_for_a_memory_column_and_reads_it():
    """A RHO-LOSS-like priority policy: difficulty is the loss minus a fixed per-sample irreducible loss."""
    from hardmine import Column, PriorityPolicy

    class Reducible(PriorityPolicy):  # no name: not registered
        columns = (Column("irreducible_loss", np.float32, 0.0, source=None),)

        def raw_difficulty(self, memory, indices=None):
            return super().raw_difficulty(memory, indices) - memory.get("irreducible_loss", indices)

        def priority(self, difficulty):
            return np.maximum(difficulty, 0.0) + 1e-6

    memory = ScoreMemory(4)
    sampler = HardExampleSampler(memory, batch_size=4, num_batches=50, policy=Reducible(), seed=0)
    memory.set("irreducible_loss", np.array([0.0, 0.0, 5.0, 5.0]))  # samples 2 and 3: high loss, nothing to learn
    memory.update(np.arange(4), np.array([1.0, 1.0, 5.5, 5.5]))
    drawn = np.concatenate(list(sampler))
    assert np.isin(drawn, [0, 1]).mean() > 0.6  # reducible loss 1.0 vs 0.5


def test_a_priority_policy_needs_only_priority():
    from hardmine import PriorityPolicy

    class Squared(PriorityPolicy):
        def priority(self, difficulty):
            return difficulty ** 2

    memory = ScoreMemory(3)
    memory.update(np.arange(3), np.array([1.0, 2.0, 3.0]))
    policy = Squared()
    policy.start_epoch(0, memory)
    np.testing.assert_allclose(policy.priorities(memory), [1.0, 4.0, 9.0])
    np.testing.assert_allclose(policy.weights(np.array([0.2, 0.8]), 3), [1.0, 1.0])
    with pytest.raises(NotImplementedError, match="priority"):
        PriorityPolicy().priorities(memory)


def test_the_three_kinds_are_importable_from_hardmine_policies_and_the_sampler_dispatches_on_them():
    import hardmine as hm
    from hardmine.policies import BatchPolicy, PriorityPolicy, SubsetPolicy

    assert (hm.PriorityPolicy, hm.SubsetPolicy, hm.BatchPolicy) == (PriorityPolicy, SubsetPolicy, BatchPolicy)
    kinds = {name: next(k.__name__ for k in (PriorityPolicy, SubsetPolicy, BatchPolicy) if issubclass(cls, k))
             for name, cls in POLICIES.items() if name in ("importance", "rank", "uniform", "prune_easy",
                                                           "selective_backprop")}
    assert kinds == {"importance": "PriorityPolicy", "rank": "PriorityPolicy", "uniform": "SubsetPolicy",
                     "prune_easy": "SubsetPolicy", "selective_backprop": "BatchPolicy"}
    with pytest.raises(ValueError, match=r"policy must be one of \[.*'importance'.*\], got 'importanse'"):
        build_policy("importanse")


def _refuses(policy, values):
    memory = ScoreMemory(values.size)
    try:
        policy.check_scores("per_sample_loss", np.arange(values.size), values, memory)
    except ValueError as error:
        return str(error)
    return None


@pytest.mark.parametrize("alpha", [1.0, 2.0, 8.0])
def test_the_check_at_a_batchs_extremes_refuses_exactly_what_the_full_check_refuses(alpha):
    """ImportancePolicy is monotone: checking the smallest and largest score must decide as every score would."""
    class Unmonotone(ImportancePolicy):  # the same priorities, checked score by score
        monotone = False

    rng = np.random.default_rng(0)
    refused = 0
    for _ in range(60):
        values = rng.uniform(-5, 5, 16) * 10.0 ** rng.integers(0, 40)
        fast, full = ImportancePolicy(alpha=alpha), Unmonotone(alpha=alpha)
        assert (_refuses(fast, values) is None) == (_refuses(full, values) is None), values
        refused += _refuses(full, values) is not None
    assert 0 < refused < 60  # both outcomes were tried


def test_a_range_checked_in_one_epoch_is_checked_again_when_the_epoch_changes_the_priorities():
    """A monotone policy whose priorities depend on the epoch's state: the range found fit before is forgotten."""
    from hardmine import PriorityPolicy

    class Scaled(PriorityPolicy):  # no name: not registered
        monotone = True

        def prepare(self, epoch, memory):
            self.scale = 10.0 ** (30 * epoch)

        def priority(self, difficulty):
            return np.maximum(difficulty, 0.0) * self.scale

    memory = ScoreMemory(8)
    policy = Scaled()
    policy.start_epoch(0, memory)
    values = np.full(4, 1e9)
    policy.check_scores("per_sample_loss", np.arange(4), values, memory)  # a priority of 1e9 at epoch 0
    policy.start_epoch(1, memory)  # 1e39 now: past float32
    with pytest.raises(ValueError, match="per_sample_loss would give sample 0 a priority of 1e\\+39"):
        policy.check_scores("per_sample_loss", np.arange(4), values, memory)
    policy.load_state_dict(policy.state_dict())  # a load forgets the checked range too
    with pytest.raises(ValueError, match="1e\\+39"):
        policy.check_scores("per_sample_loss", np.arange(4), values, memory)
