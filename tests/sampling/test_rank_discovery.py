"""Rank and world size are read when an epoch starts: a sampler built before the process group exists still
gives each rank its own share; a change is logged once; DDP without a process group warns."""

import logging
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import hardmine as hm

N, BATCH = 40, 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _epoch(sampler: hm.HardExampleSampler) -> list[list[int]]:
    out = []
    for batch in sampler:
        out.append(list(batch))
        sampler.update(batch, np.ones(len(batch)))
    return out


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    sampler = hm.HardExampleSampler(hm.ScoreMemory(N), BATCH, policy="uniform", seed=2)  # before the group
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        np.save(f"{out_dir}/len{rank}.npy", np.array([len(sampler)]))
        np.save(f"{out_dir}/batches{rank}.npy", np.array(_epoch(sampler)))
    finally:
        torch.distributed.destroy_process_group()


def test_a_sampler_built_before_init_process_group_gives_each_rank_its_slice(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (np.load(tmp_path / f"batches{r}.npy") for r in (0, 1))
    assert np.load(tmp_path / "len0.npy")[0] == len(rank0) == N // (2 * BATCH)
    assert rank0.shape == rank1.shape == (N // (2 * BATCH), BATCH)
    assert not set(rank0.ravel()) & set(rank1.ravel())  # disjoint shares
    single = _epoch(hm.HardExampleSampler(hm.ScoreMemory(N), 2 * BATCH, policy="uniform", seed=2))
    np.testing.assert_array_equal(np.concatenate([rank0, rank1], axis=1), np.array(single))


def test_ddp_environment_without_a_process_group_warns(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    sampler = hm.HardExampleSampler(hm.ScoreMemory(N), BATCH, policy="uniform")
    with pytest.warns(UserWarning, match="WORLD_SIZE=2.*init_process_group"):
        next(iter(sampler))


def test_a_rank_change_is_logged_once(monkeypatch, caplog):
    sampler = hm.HardExampleSampler(hm.ScoreMemory(N), BATCH, policy="uniform")
    monkeypatch.setattr("hardmine.sampling.world.rank_and_world", lambda: (1, 2))
    with caplog.at_level(logging.INFO, logger="hardmine"):
        _epoch(sampler)
        _epoch(sampler)
    changes = [r for r in caplog.records if "world size" in r.getMessage()]
    assert len(changes) == 1 and "rank 1 of world size 2" in changes[0].getMessage()
    assert len(sampler) == N // (2 * BATCH)
