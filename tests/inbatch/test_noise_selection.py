"""The in-batch noise guard in a user's own loop: OHEM over `sampler.selection(idx)` never picks a suspect."""

import numpy as np
import torch

import hardmine as hm


def test_ohem_over_the_selection_leaves_the_suspects_out():
    n = 40
    labels = np.arange(n) % 4
    memory = hm.ScoreMemory(n, labels=labels)
    losses = np.where(np.arange(n) % 10 == 3, 6.0, 0.2)  # 3, 13, 23, 33: a persistently high loss
    for _ in range(3):
        memory.update(np.arange(n), losses)
    guard = hm.NoiseGuard(min_visits=3)
    sampler = hm.HardExampleSampler(memory, 20, policy=hm.UniformPolicy(guards=[guard]), seed=0)
    ohem = hm.OHEMLoss(torch.nn.CrossEntropyLoss(reduction="none"), keep=0.25)
    logits = torch.zeros(n, 4)
    logits[np.arange(n), labels] = torch.from_numpy(-losses).float()  # the suspects are the hardest
    for idx in sampler:
        keep = sampler.selection(idx)
        x = logits[idx].clone().requires_grad_(True)
        y = torch.from_numpy(labels[idx])
        ohem(x[keep], y[keep]).backward()
        picked = idx[x.grad.abs().sum(1).numpy() > 0]
        assert picked.size > 0 and not np.isin(picked, [3, 13, 23, 33]).any()
        unguarded = x.detach().requires_grad_(True)
        ohem(unguarded, y).backward()  # without the selection OHEM picks exactly them
        suspects_here = np.isin(idx, [3, 13, 23, 33]).sum()
        assert np.isin(idx[unguarded.grad.abs().sum(1).numpy() > 0], [3, 13, 23, 33]).sum() == suspects_here
    assert guard.suspects().tolist() == [3, 13, 23, 33]
