"""Resume is exact: a run restored from a mid-epoch or an end-of-epoch checkpoint consumes the batches of the
uninterrupted run, batch for batch, with DataLoader workers drawing ahead or not, for every registered policy."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import hardmine as hm
from hardmine.testing import policy_params

N, BATCH, EPOCHS = 50, 8, 3  # 7 batches an epoch, the last one of 2


def fake_loss(idx: torch.Tensor, step: int) -> torch.Tensor:
    """A deterministic stand-in for a model's per-sample loss that changes as training goes on."""
    i = idx.double()
    return torch.sin(i * 0.37 + step * 0.11).abs() * (1 + i % 7)


def new_run(policy: str, workers: int):
    memory = hm.ScoreMemory(N, labels=np.arange(N) % 3)
    sampler = hm.HardExampleSampler(memory, BATCH, policy=hm.build_policy(policy, **policy_params(policy, N)), seed=5)
    data = hm.WithIndex(TensorDataset(torch.arange(N)))
    loader = DataLoader(data, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
    return memory, sampler, loader


def train(memory, sampler, loader, start_epoch: int, checkpoints: dict | None = None,
          last_step_of_epoch_1: bool = False) -> list[list[int]]:
    """The user's loop; snapshots of both states go to `checkpoints` at the end of epoch 0 and in the middle of
    epoch 1 (after its first half, rounded up; after its last batch with `last_step_of_epoch_1`)."""
    seen = []
    for epoch in range(start_epoch, EPOCHS):
        sampler.set_epoch(epoch)
        for step, (idx, _) in enumerate(loader):
            sampler.update(idx, fake_loss(idx, memory.updates))
            sampler.weights(idx)
            seen.append(idx.tolist())
            at = len(sampler) if last_step_of_epoch_1 else -(-len(sampler) // 2)
            if checkpoints is not None and epoch == 1 and step + 1 == at:
                checkpoints["mid"] = (sampler.state_dict(), memory.state_dict(), len(seen))
        if checkpoints is not None and epoch == 0:
            checkpoints["epoch_end"] = (sampler.state_dict(), memory.state_dict(), len(seen))
    return seen


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("policy", sorted(hm.POLICIES))
def test_resume_consumes_the_uninterrupted_batches(policy, workers):
    memory, sampler, loader = new_run(policy, workers)
    checkpoints = {}
    full = train(memory, sampler, loader, 0, checkpoints)
    final_scores = memory.get("score")
    for name in ("mid", "epoch_end"):
        sampler_state, memory_state, done = checkpoints[name]
        memory2, sampler2, loader2 = new_run(policy, workers)
        memory2.load_state_dict(memory_state)
        sampler2.load_state_dict(sampler_state)
        start = 1  # mid: continue epoch 1; epoch end: set_epoch(1) starts the next epoch
        resumed = train(memory2, sampler2, loader2, start)
        assert len(resumed) + done == len(full), (name, len(resumed), done, len(full))
        identical = sum(a == b for a, b in zip(full[done:], resumed))
        assert identical == len(resumed), (name, identical, len(resumed))
        np.testing.assert_array_equal(memory2.get("score"), final_scores)
        assert memory2.updates == memory.updates


def test_epoch_end_checkpoint_resumes_with_the_next_epoch_only():
    memory, sampler, loader = new_run("uniform", 0)
    checkpoints = {}
    full = train(memory, sampler, loader, 0, checkpoints)
    sampler_state, memory_state, _ = checkpoints["epoch_end"]
    assert sampler_state["epoch"] == 0 and sampler_state["position"] == len(sampler)
    memory2, sampler2, loader2 = new_run("uniform", 0)
    memory2.load_state_dict(memory_state)
    sampler2.load_state_dict(sampler_state)
    resumed = train(memory2, sampler2, loader2, 1)
    per_epoch = -(-N // BATCH)
    assert len(full) == EPOCHS * per_epoch and len(resumed) == (EPOCHS - 1) * per_epoch
    assert resumed == full[per_epoch:]


def test_a_checkpoint_counts_consumed_batches_not_prefetched_ones():
    memory, sampler, loader = new_run("importance", 2)
    iterator = iter(loader)
    for _ in range(5):
        idx, _ = next(iterator)
        sampler.update(idx, fake_loss(idx, memory.updates))
    assert sampler.state_dict()["position"] == 5
    assert sampler.position == 5
    del iterator


def test_every_sample_visit_is_counted_over_an_epoch():
    memory, sampler, loader = new_run("uniform", 2)
    visits = np.zeros(N, dtype=np.int64)
    for idx, _ in loader:
        np.add.at(visits, idx.numpy(), 1)
        sampler.update(idx, fake_loss(idx, memory.updates))
    np.testing.assert_array_equal(visits, np.ones(N))
    np.testing.assert_array_equal(memory.get("seen"), np.ones(N))


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("policy", ["uniform", "importance", "prune_easy", "selective_backprop"])
def test_a_checkpoint_at_an_epochs_last_batch_resumes_with_the_natural_loop(policy, workers):
    """The checkpoint is taken in the loop, after the last batch of epoch 1, with the loop's epoch; the resumed
    loop is `for epoch in range(saved_epoch, EPOCHS): set_epoch(epoch)`: epoch 1 yields nothing more."""
    memory, sampler, loader = new_run(policy, workers)
    checkpoints = {}
    full = train(memory, sampler, loader, 0, checkpoints, last_step_of_epoch_1=True)
    sampler_state, memory_state, done = checkpoints["mid"]
    memory2, sampler2, loader2 = new_run(policy, workers)
    memory2.load_state_dict(memory_state)
    sampler2.load_state_dict(sampler_state)
    resumed = train(memory2, sampler2, loader2, 1)  # the epoch the checkpoint was taken in
    assert done + len(resumed) == len(full)
    assert resumed == full[done:]
    np.testing.assert_array_equal(memory2.get("score"), memory.get("score"))
