"""Guards are hooks that receive arrays: which hooks each implements, refusal when a policy calls none of them,
a guard written outside the library, and the in-batch selection hook."""

import numpy as np
import pytest

import hardmine as hm
from hardmine.sampling.guards import GUARDS, HOOKS, Guard
from hardmine.state import Int


def test_each_guard_implements_the_hooks_of_its_own_file():
    assert GUARDS["noise_guard"].hooks() == {"adjust_difficulty", "adjust_selection"}
    assert GUARDS["class_balance"].hooks() == {"start_priorities", "adjust_priorities", "adjust_probabilities",
                                               "strata", "adjust_subset"}
    assert GUARDS["coverage"].hooks() == {"adjust_mix", "forced", "adjust_subset"}
    assert GUARDS["weight_cap"].hooks() == {"adjust_weights"}
    for policy in hm.POLICIES.values():
        assert policy.calls <= set(HOOKS), policy.name


@pytest.mark.parametrize("policy, guard", [("uniform", "coverage"), ("selective_backprop", "coverage"),
                                           ("uniform", "class_balance"), ("selective_backprop", "class_balance")])
def test_refusal_lists_the_guards_hooks_and_the_policys(policy, guard):
    with pytest.raises(ValueError, match=rf"{guard} has no effect on the '{policy}' policy: the guard implements "
                                         r"\[.*\], the policy calls \[.*'adjust_weights'.*\]"):
        hm.build_policy(policy, guards=[GUARDS[guard]()])


def test_a_guard_written_outside_the_library_runs_through_its_hooks():
    class Floor(Guard):
        """Raises every priority to at least `low`, and counts the epochs it saw."""

        state_fields = {"epochs": Int(0)}

        def __init__(self, low: float = 0.5) -> None:
            super().__init__()
            self.low = low
            self._state = {"epochs": 0}

        def start_epoch(self, epoch, memory, difficulty):
            assert difficulty.shape == (memory.num_samples,) and difficulty.dtype == np.float64
            self._state["epochs"] += 1

        def adjust_priorities(self, priorities, indices, labels):
            return np.maximum(priorities, self.low)

    memory = hm.ScoreMemory(20)
    memory.update(np.arange(20), np.r_[np.zeros(19), 1.0])
    policy = hm.ImportancePolicy(alpha=1.0, eps=1e-9, guards=[Floor()])
    np.testing.assert_allclose(policy.priorities(memory, np.array([0, 19])), [0.5, 1.0])
    sampler = hm.HardExampleSampler(memory, 10, policy=policy, seed=0)
    list(sampler)
    assert policy.guards[0]._state["epochs"] == 1 and policy.guard_stats() == {}
    saved = policy.guards[0].state_dict()  # its argument and its field, saved without writing either out
    assert saved["config"] == {"low": 0.5} and saved["state"] == {"epochs": 1}
    with pytest.raises(ValueError, match="has no effect on the 'prune_easy' policy"):
        hm.build_policy("prune_easy", guards=[Floor()])


def test_in_batch_selection_leaves_the_noise_suspects_out():
    memory = hm.ScoreMemory(6, labels=[0, 1, 0, 1, 0, 1])
    for _ in range(3):
        memory.update(np.arange(6), np.array([0.1, 0.2, 0.3, 0.4, 5.0, 0.5]))
    guard = hm.NoiseGuard(min_visits=3)
    sampler = hm.HardExampleSampler(memory, 6, policy=hm.UniformPolicy(guards=[guard]), seed=0)
    batch = next(iter(sampler))
    keep = sampler.selection(batch)
    assert keep.dtype.is_floating_point is False and keep.tolist() == (batch != 4).tolist()
    assert sampler.policy.suspects().tolist() == [4] and sampler.stats()["noise_suspects"] == 1.0
    plain = hm.HardExampleSampler(memory, 6, policy="uniform", seed=0)
    assert plain.selection(next(iter(plain))).all() and plain.policy.suspects() is None


class ExcludeMultiplesOf3(Guard):
    """Leaves the samples whose index is a multiple of 3 out of every batch's in-batch selection."""

    def adjust_selection(self, keep, indices):
        return keep & (indices % 3 != 0)


def test_a_selection_guard_is_accepted_by_every_policy_and_check_guard_proves_it_excludes():
    """Every policy calls adjust_selection (HardExampleSampler.selection) and lists it in `calls`: such a guard was
    refused by 11 of 12 policies; check_guard now runs it under each and proves the samples are left out."""
    from hardmine import testing

    for name, policy in hm.POLICIES.items():
        assert "adjust_selection" in policy.calls and policy.affected_by(ExcludeMultiplesOf3), name
    for name in sorted(hm.POLICIES):
        testing.check_guard_effect(ExcludeMultiplesOf3(), hm.POLICIES[name], params=testing.policy_params(name))
    testing.check_guard(ExcludeMultiplesOf3(), policies=["uniform", "importance"])


def test_check_guard_fails_for_a_guard_whose_hook_is_never_called():
    from hardmine import testing

    class Deaf(hm.UniformPolicy):
        """Lists adjust_selection but never calls the guards' hook."""

        name = ""

        def selection(self, keep, indices):
            return keep

    with pytest.raises(AssertionError, match=r"accepts the guard for \['adjust_selection'\] .* but never calls them"):
        testing.check_guard(ExcludeMultiplesOf3(), policies=[Deaf])

    class Ignores(hm.UniformPolicy):
        """Calls the guards' hook but keeps every sample anyway."""

        name = ""

        def selection(self, keep, indices):
            super().selection(keep, indices)
            return keep

    with pytest.raises(AssertionError, match="adjust_selection left out samples .* but the batch's selection keeps"):
        testing.check_guard(ExcludeMultiplesOf3(), policies=[Ignores])

    class Unstratified(hm.TopKFractionPolicy):
        """Lists strata in `calls` (as its parent) but never asks the guards for them."""

        name = ""

        def strata(self, memory):
            return None

    with pytest.raises(AssertionError, match=r"accepts the guard for \['strata'\] .* never calls them"):
        testing.check_guard_effect(hm.ClassBalance(), Unstratified)


def test_a_hook_is_called_only_when_the_policy_lists_it():
    """uniform does not list adjust_subset: a guard accepted for its weights hook gets no adjust_subset call (it
    was called when the subset was given), and check_guard would name an undeclared call."""
    from hardmine import testing

    class SubsetAndCap(Guard):
        def adjust_subset(self, subset, weights, num_samples, rng):
            return subset[subset % 2 == 0], weights[subset % 2 == 0]

        def adjust_weights(self, weights):
            return weights

    testing.check_guard_effect(SubsetAndCap(), hm.POLICIES["uniform"])  # adjust_subset not called: not listed
    testing.check_guard_effect(SubsetAndCap(), hm.POLICIES["topk_fraction"])  # listed: drawn from its subset

    class Careless(hm.UniformPolicy):
        """Calls adjust_subset though uniform does not list it."""

        name = ""

        def guarded_subset(self, memory, rng):
            subset, weights = np.arange(memory.num_samples), np.ones(memory.num_samples)
            for guard in self.guards:
                subset, weights = guard.adjust_subset(subset, weights, memory.num_samples, rng)
            return subset, weights

    with pytest.raises(AssertionError, match=r"the policy calls \['adjust_subset'\], which its `calls` does not"):
        testing.check_guard_effect(SubsetAndCap(), Careless)
