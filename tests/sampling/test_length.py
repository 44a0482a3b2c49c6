"""`len(sampler)` (and so `len(DataLoader)`) is the number of batches the coming epoch yields, for every policy,
when asked where frameworks ask it: after `set_epoch`, before the epoch's first batch; deciding the epoch early
changes no batch."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import hardmine as hm
from hardmine.testing import fake_loss, policy_params

N, BATCH, EPOCHS = 70, 8, 4


def build(policy: str) -> hm.HardExampleSampler:
    memory = hm.ScoreMemory(N, labels=np.arange(N) % 3)
    policy_object = hm.build_policy(policy, **policy_params(policy, N))
    return hm.HardExampleSampler(memory, BATCH, policy=policy_object, seed=2)


def run(sampler: hm.HardExampleSampler, ask_len: bool) -> tuple[list[int], list[list[int]]]:
    """Epochs of a loop (asking len after set_epoch, or not); the lengths asked, and every batch."""
    memory, lengths, batches = sampler.memory, [], []
    memory.update(np.arange(N), np.abs(np.cos(np.arange(N))))  # warm: a subset policy prunes from epoch 0 on
    loader = DataLoader(hm.WithIndex(TensorDataset(torch.arange(N))), batch_sampler=sampler)
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        lengths.append(len(loader) if ask_len else -1)
        count = 0
        for idx, _ in loader:
            sampler.update(idx, fake_loss(idx.numpy(), memory.updates))
            sampler.weights(idx)
            batches.append(idx.tolist())
            count += 1
        lengths[-1] = (lengths[-1], count)
    return lengths, batches


@pytest.mark.parametrize("policy", sorted(hm.POLICIES))
def test_len_is_the_number_of_batches_the_epoch_yields(policy):
    lengths, batches = run(build(policy), ask_len=True)
    assert all(asked == yielded for asked, yielded in lengths), lengths
    assert batches == run(build(policy), ask_len=False)[1]  # asking decides the epoch as the iterator would


def test_len_before_the_memory_changes_is_decided_again_by_the_iterator():
    sampler = build("prune_easy")
    assert len(sampler) == -(-N // BATCH)  # nothing scored: nothing is easy
    sampler.memory.update(np.arange(N), np.abs(np.cos(np.arange(N))))
    pruned = list(sampler)
    assert len(pruned) == len(sampler) < -(-N // BATCH)
