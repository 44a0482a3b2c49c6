"""Every registered policy, alone and with each guard, through the same checks: parameter errors, seeding,
exact resumption through a checkpoint file, and epochs under DataLoader."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import hardmine as hm
from hardmine.sampling.guards import GUARDS, NoiseGuard
from hardmine.sampling.policies import POLICIES

N, BATCH = 103, 10
LABELS = np.where(np.arange(N) % 10 == 0, 2, np.arange(N) % 2)  # class 2 is rare


def guard_for(name: str) -> hm.guards.Guard:
    return NoiseGuard(min_visits=1) if name == "noise_guard" else GUARDS[name]()


CASES = [(p, None) for p in sorted(POLICIES)] + [
    (p, g) for p in sorted(POLICIES) for g in sorted(GUARDS) if POLICIES[p].affected_by(GUARDS[g])]


def make(policy: str, guard: str | None, seed: int = 0) -> tuple[hm.ScoreMemory, hm.HardExampleSampler]:
    memory = hm.ScoreMemory(N, labels=LABELS)
    built = hm.build_policy(policy, guards=[guard_for(guard)] if guard else [])
    return memory, hm.HardExampleSampler(memory, BATCH, policy=built, seed=seed)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_unknown_parameters_are_refused_by_name(policy):
    with pytest.raises(TypeError, match=f"policy '{policy}'.*no_such_parameter"):
        hm.build_policy(policy, no_such_parameter=1)
    with pytest.raises(ValueError, match="warmup"):
        hm.build_policy(policy, warmup=-1)
    with pytest.raises(TypeError, match="guards"):
        hm.build_policy(policy, guards=["noise_guard"])


@pytest.mark.parametrize("policy, guard", [(p, g) for g in sorted(GUARDS) for p in sorted(POLICIES)
                                           if not POLICIES[p].affected_by(GUARDS[g])])
def test_a_guard_without_effect_on_a_policy_is_refused(policy, guard):
    with pytest.raises(ValueError, match=f"{guard} has no effect on the '{policy}' policy"):
        hm.build_policy(policy, guards=[guard_for(guard)])


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_guard_state_round_trips_and_bad_config_is_refused(name):
    guard = guard_for(name)
    rebuilt = type(guard).from_state(guard.state_dict())
    assert repr(rebuilt) == repr(guard)
    with pytest.raises(ValueError, match="guard's state"):
        type(guard).from_state({"name": "other"})


@pytest.mark.parametrize("policy, guard", CASES)
def test_same_seed_same_batches_other_seed_other_batches(policy, guard, run_steps):
    steps = 25  # more than two epochs for every policy
    a = run_steps(make(policy, guard, seed=3)[1], steps)
    b = run_steps(make(policy, guard, seed=3)[1], steps)
    c = run_steps(make(policy, guard, seed=4)[1], steps)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert all(x.dtype == np.int64 and x.min() >= 0 and x.max() < N for x in a)


@pytest.mark.parametrize("policy, guard", CASES)
def test_resume_through_a_checkpoint_continues_exactly(policy, guard, tmp_path, run_steps):
    total, stop = 30, 14  # stop inside the second epoch, continue into later ones
    reference = run_steps(make(policy, guard)[1], total)
    memory, sampler = make(policy, guard)
    first = run_steps(sampler, stop)
    hm.save_state({"sampler": sampler.state_dict(), "memory": memory.state_dict()}, tmp_path / "ckpt.pt")
    state = hm.load_state(tmp_path / "ckpt.pt")
    memory2, sampler2 = make(policy, guard, seed=99)
    memory2.load_state_dict(state["memory"])
    sampler2.load_state_dict(state["sampler"], use_saved_config=True)  # the saved seed, asked for
    rest = run_steps(sampler2, total - stop, start_step=stop)
    for k, (x, y) in enumerate(zip(reference, first + rest)):
        assert np.array_equal(x, y), f"batch {k} differs after resuming"


@pytest.mark.parametrize("policy, guard", [(p, None) for p in sorted(POLICIES)] + [("importance", "class_balance")])
def test_epochs_end_under_dataloader(policy, guard):
    data = TensorDataset(torch.arange(N, dtype=torch.float32), torch.from_numpy(LABELS))
    memory, sampler = make(policy, guard)
    loader = DataLoader(hm.WithIndex(data), batch_sampler=sampler, num_workers=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = 0
        for idx, x, y in loader:
            assert torch.equal(x, idx.float()) and torch.equal(y, torch.from_numpy(LABELS)[idx])
            sampler.update(idx, x / N + 0.1)
            assert sampler.weights(idx).shape == idx.shape
            batches += 1
        assert batches == len(sampler) >= 1
    stats = sampler.stats()
    assert stats["epoch"] == 2 and 0 < stats["fraction_seen"] <= 1
