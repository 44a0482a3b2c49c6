"""`sampler.stats()` under torch.distributed (2 gloo processes): no collective, so one rank may call it alone (as
Lightning's rank-zero logging does); the memory's numbers are every rank's, the per-batch ones this rank's."""

from __future__ import annotations

import numpy as np
import pytest

import hardmine as hm
from tests.distributed.spawn import run_two

POLICIES = ("importance", "uniform", "prune_easy", "selective_backprop", "online_top_loss")


def _epoch_then_stats(rank: int, policy: str) -> dict:
    sampler = hm.HardExampleSampler(hm.ScoreMemory(64, labels=np.arange(64) % 4), 8, policy=policy, seed=0)
    for batch in sampler:
        sampler.update(batch, np.linspace(0.0, 1.0, batch.size) + rank)
        sampler.weights(batch)
    return sampler.stats() if rank == 0 else {"score_mean": sampler.stats()["score_mean"]}


@pytest.mark.parametrize("policy", POLICIES)
def test_stats_under_ddp_are_rank_local_and_need_no_collective(tmp_path, policy):
    ranks = run_two(tmp_path, _epoch_then_stats, policy)
    assert all("value" in r for r in ranks), ranks
    stats = ranks[0]["value"]
    assert stats["score_mean"] == ranks[1]["value"]["score_mean"]  # the memory is every rank's
    assert np.isfinite(stats["loss_variance"])  # of this rank's last batch
    assert stats["num_batches"] == stats["batch"]
