"""One state protocol: pure state_dict(), validate-then-assign load_state_dict(), a state_version everywhere."""

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine import testing
from hardmine.state import check_state, from_saved, to_saved


def test_conversion_round_trips_nested_values():
    value = {"a": np.arange(3), "b": [np.ones(2, dtype=np.float32), 4], "c": "text"}
    saved = to_saved(value)
    assert isinstance(saved["a"], torch.Tensor) and isinstance(saved["b"][0], torch.Tensor)
    back = from_saved(saved)
    assert np.array_equal(back["a"], value["a"]) and back["b"][1] == 4 and back["c"] == "text"
    saved["a"][0] = 99  # a copy: the source is untouched
    assert value["a"][0] == 0


def test_check_state_names_the_owner_the_version_and_the_missing_keys():
    with pytest.raises(TypeError, match="thing state must be a dict"):
        check_state([], "thing", 1, ())
    with pytest.raises(ValueError, match=r"thing state is missing keys \['state_version'\]"):
        check_state({}, "thing", 1, ())
    with pytest.raises(ValueError, match="thing state has state_version 2, expected 1"):
        check_state({"state_version": 2}, "thing", 1, ())
    with pytest.raises(ValueError, match=r"missing keys \['b'\]"):
        check_state({"state_version": 1, "a": 0}, "thing", 1, ("a", "b"))


def _steps(sampler, memory, steps):
    for _, batch in zip(range(steps), sampler):
        sampler.update(batch, np.linspace(0.1, 1.0, batch.size))


@pytest.mark.parametrize("policy", sorted(hm.POLICIES))
def test_state_dict_is_pure_and_carries_a_version(policy):
    memory = hm.ScoreMemory(40, labels=np.arange(40) % 2)
    sampler = hm.HardExampleSampler(memory, 8, policy=hm.build_policy(policy, **testing.policy_params(policy, 40)),
                                    seed=0)
    _steps(sampler, memory, 7)
    first, second = sampler.state_dict(), sampler.state_dict()
    assert repr(first) == repr(second)  # asking twice changes nothing
    assert first["state_version"] == 2 and first["policy"]["state_version"] == 1
    assert memory.state_dict()["state_version"] == 1


def test_a_bad_policy_state_changes_nothing():
    memory = hm.ScoreMemory(40)
    sampler = hm.HardExampleSampler(memory, 8, policy=hm.SelectiveBackpropPolicy(), seed=0)
    _steps(sampler, memory, 3)
    before = repr(sampler.state_dict())
    state = sampler.state_dict()
    state["policy"]["selector"] = {"history": torch.zeros(3)}
    with pytest.raises(ValueError, match="state is missing|history|state_version"):
        sampler.load_state_dict(state)
    state = sampler.state_dict()
    state["policy"]["state_version"] = 0
    with pytest.raises(ValueError, match="state_version 0, expected 1"):
        sampler.load_state_dict(state)
    assert repr(sampler.state_dict()) == before


def test_loading_keeps_the_guard_objects_the_caller_holds():
    memory = hm.ScoreMemory(40, labels=np.arange(40) % 2)
    guard = hm.NoiseGuard(min_visits=1)
    sampler = hm.HardExampleSampler(memory, 8, policy=hm.ImportancePolicy(guards=[guard]), seed=0)
    _steps(sampler, memory, 6)
    other_guard = hm.NoiseGuard(min_visits=1)
    other = hm.HardExampleSampler(hm.ScoreMemory(40, labels=np.arange(40) % 2), 8,
                                  policy=hm.ImportancePolicy(guards=[other_guard]), seed=0)
    other.load_state_dict(sampler.state_dict())
    assert other.policy.guards[0] is other_guard
    assert np.array_equal(other_guard.suspects(), guard.suspects())
