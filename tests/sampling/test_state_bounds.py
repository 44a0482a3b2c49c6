"""The sampler's state and its inputs are bounded and checked: huge epochs, a bool world size, a state of another
data set size, a cut drawn batch; drawn-but-unconsumed batches in the state are bounded; buffered updates do
not keep the caller's index array."""

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine.sampling.ledger import DRAWN_SAVED


def sampler_of(n: int = 30, policy: str = "importance", **kwargs) -> hm.HardExampleSampler:
    return hm.HardExampleSampler(hm.ScoreMemory(n), 4, policy=policy, seed=0, **kwargs)


def state_after(steps: int, n: int = 30, consume: bool = True) -> dict:
    sampler = sampler_of(n)
    for _, batch in zip(range(steps), sampler):
        if consume:
            sampler.weights(batch)
    return sampler.state_dict()


def test_an_epoch_too_large_for_the_random_streams_is_refused():
    with pytest.raises(ValueError, match="epoch"):
        sampler_of().set_epoch(2**70)
    state = state_after(3)
    state["epoch"] = 10**30
    sampler = sampler_of()
    with pytest.raises(ValueError, match=r"state\['epoch'\]"):
        sampler.load_state_dict(state)
    assert sampler.epoch == 0


def test_a_bool_world_size_or_batch_size_is_refused():
    for key in ("world_size", "batch_size"):
        state = state_after(3)
        state[key] = True if key == "world_size" else state[key]
        if key == "batch_size":
            state[key] = 4.0
        with pytest.raises((TypeError, ValueError), match=key):
            sampler_of().load_state_dict(state)


def test_a_state_of_another_data_set_size_is_refused():
    with pytest.raises(ValueError, match="num_samples"):
        sampler_of(30).load_state_dict(state_after(3, n=20))


def test_a_drawn_batch_of_the_wrong_size_is_refused():
    state = state_after(2, consume=False)
    state["drawn"]["indices"][0] = state["drawn"]["indices"][0][:3]
    state["drawn"]["weights"][0] = state["drawn"]["weights"][0][:3]
    sampler = sampler_of()
    with pytest.raises(ValueError, match="batch"):
        sampler.load_state_dict(state)


def test_drawn_but_unconsumed_batches_in_the_state_are_bounded():
    n = 4 * (DRAWN_SAVED + 200)
    sampler = sampler_of(n, policy="uniform")
    for _ in zip(range(DRAWN_SAVED + 100), sampler):
        pass
    state = sampler.state_dict()
    assert len(state["drawn"]["indices"]) == DRAWN_SAVED
    resumed = sampler_of(n, policy="uniform")
    resumed.load_state_dict(state)
    again = sampler_of(n, policy="uniform")
    assert all(np.array_equal(a, b) for a, b in zip(resumed, again))  # the rest drawn anew, alike


@pytest.mark.parametrize("change", ["assign", "add_"])
def test_a_buffered_update_keeps_its_own_copy_of_the_indices(change):
    sampler = sampler_of(64, policy="importance")
    batch = next(iter(sampler))
    idx = torch.from_numpy(batch[:3].copy())  # the caller's own array (a part of the batch)
    sampler.update(idx, torch.arange(3, dtype=torch.int64) + 1)  # integer losses: the general path
    if change == "assign":
        idx[:] = torch.tensor([61, 62, 63])
    else:
        idx.add_(20)
    sampler.flush()
    seen = sampler.memory.get("seen")
    assert seen[batch[:3]].tolist() == [1, 1, 1] and seen.sum() == 3


@pytest.mark.parametrize("change, match", [
    (lambda d: d.update(positions=d["positions"] + 100), r"positions'\] .* must be below the epoch's 8 batches"),
    (lambda d: d.update(indices=[d["indices"][0] + 100, *d["indices"][1:]]), r"indices outside \[0, 30\)"),
])
def test_the_drawn_batches_are_checked_against_the_epoch(change, match):
    state = state_after(2, consume=False)
    change(state["drawn"])
    sampler = sampler_of()
    before = repr(sampler.state_dict())
    with pytest.raises(ValueError, match=match):
        sampler.load_state_dict(state)
    assert repr(sampler.state_dict()) == before
