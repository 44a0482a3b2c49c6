"""HardExampleSampler and WithIndex: epochs under DataLoader, exact resumption, distributions, weights, errors."""

import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, TensorDataset

import hardmine as hm
from hardmine import HardExampleSampler, ImportancePolicy, ScoreMemory, WithIndex


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("policy", ["uniform", "importance"])
def test_epochs_end_under_dataloader(workers, policy):
    data = TensorDataset(torch.arange(50, dtype=torch.float32), torch.arange(50) % 3)
    memory = ScoreMemory(50)
    sampler = HardExampleSampler(memory, batch_size=8, policy=policy, seed=1)
    loader = DataLoader(WithIndex(data), batch_sampler=sampler, num_workers=workers)
    assert len(loader) == 7
    for epoch in range(2):
        sampler.set_epoch(epoch)
        seen = []
        for idx, x, y in loader:
            assert idx.dtype == torch.int64 and torch.equal(x, idx.float()) and torch.equal(y, idx % 3)
            sampler.update(idx, x + 1.0)
            seen.append(idx)
        assert len(seen) == 7 and sum(len(s) for s in seen) == 50
        if policy == "uniform":
            assert sorted(torch.cat(seen).tolist()) == list(range(50))


def test_iter_has_no_side_effects_until_consumed():
    sampler = HardExampleSampler(ScoreMemory(20), batch_size=5, policy="uniform", seed=3)
    unused = iter(sampler)
    first = list(sampler)
    second = list(sampler)  # the first epoch was exhausted: the next iterator draws epoch 1
    del unused
    fresh = HardExampleSampler(ScoreMemory(20), batch_size=5, policy="uniform", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, list(fresh)))
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))
    assert sampler.epoch == 1
    sampler.set_epoch(0)
    assert all(np.array_equal(a, b) for a, b in zip(first, list(sampler)))


@pytest.mark.parametrize("policy", ["uniform", "importance"])
def test_resume_mid_epoch_continues_exactly(tmp_path, policy, run_steps):
    n, batch, total_steps, stop = 103, 10, 27, 4  # 11 batches an epoch: stop in epoch 0, run into epoch 2
    reference = run_steps(HardExampleSampler(ScoreMemory(n), batch, policy=policy, seed=7), total_steps)

    memory = ScoreMemory(n)
    sampler = HardExampleSampler(memory, batch, policy=policy, seed=7)
    before = run_steps(sampler, stop)
    hm.save_state({"sampler": sampler.state_dict(), "memory": memory.state_dict()}, tmp_path / "ckpt.pt")

    state = hm.load_state(tmp_path / "ckpt.pt")
    memory2 = ScoreMemory(n)
    memory2.load_state_dict(state["memory"])
    sampler2 = HardExampleSampler(memory2, batch, policy=policy, seed=12345)
    sampler2.load_state_dict(state["sampler"], use_saved_config=True)  # the saved seed, asked for
    sampler2.set_epoch(0)  # what a resumed loop does: the current epoch keeps its position
    after = run_steps(sampler2, total_steps - stop, start_step=stop)
    resumed = before + after
    assert len(resumed) == len(reference)
    for k, (a, b) in enumerate(zip(reference, resumed)):
        assert np.array_equal(a, b), f"batch {k} differs"


def test_importance_draws_follow_the_policy():
    n = 40
    scores = np.linspace(0.0, 3.0, n)
    memory = ScoreMemory(n)
    memory.update(np.arange(n), scores)
    policy = ImportancePolicy(alpha=1.5, mix=0.2, eps=0.01)
    sampler = HardExampleSampler(memory, batch_size=500, num_batches=400, policy=policy, seed=0)
    counts = np.bincount(np.concatenate(list(sampler)), minlength=n)
    p = (scores + 0.01) ** 1.5
    expected = 0.8 * p / p.sum() + 0.2 / n
    stat = ((counts - counts.sum() * expected) ** 2 / (counts.sum() * expected)).sum()
    assert stat < (n - 1) + 3.72 * np.sqrt(2 * (n - 1))


def test_weights_are_those_of_the_draw_and_found_for_subsets():
    n = 30
    memory = ScoreMemory(n)
    memory.update(np.arange(n), np.arange(n, dtype=float))
    policy = ImportancePolicy(alpha=1.0, beta=0.5, mix=0.1, eps=1e-3)  # normalize="none": unbiased, the default
    sampler = HardExampleSampler(memory, batch_size=6, policy=policy, seed=0)
    batch = next(iter(sampler))
    p = np.arange(n) + 1e-3
    prob = 0.9 * p[batch] / p.sum() + 0.1 / n
    expected = (n * prob) ** -0.5
    weights = sampler.weights(torch.from_numpy(batch))
    assert weights.dtype == torch.float32
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    sampler.update(batch, np.zeros(batch.size))  # later updates do not change the weights of the drawn batch
    np.testing.assert_allclose(sampler.weights(batch).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(sampler.weights(batch[[4, 1]]).numpy(), expected[[4, 1]], rtol=1e-6)
    never = np.setdiff1d(np.arange(n), batch)[:2]
    with pytest.raises(ValueError, match="not part of any"):
        sampler.weights(never)


def test_uniform_weights_are_ones():
    sampler = HardExampleSampler(ScoreMemory(10), batch_size=4, policy="uniform")
    batch = next(iter(sampler))
    assert torch.equal(sampler.weights(batch), torch.ones(4))


def test_drop_last_and_num_batches():
    memory = ScoreMemory(10)
    assert [len(b) for b in HardExampleSampler(memory, 4, policy="uniform")] == [4, 4, 2]
    assert [len(b) for b in HardExampleSampler(memory, 4, policy="uniform", drop_last=True)] == [4, 4]
    assert len(list(HardExampleSampler(memory, 4, num_batches=5))) == 5


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.0}, TypeError, "batch_size"),
        ({"batch_size": 2, "policy": "nope"}, ValueError, "policy must be one of"),
        ({"batch_size": 2, "seed": -1}, ValueError, "seed"),
        ({"batch_size": 2, "num_batches": 0}, ValueError, "num_batches"),
        ({"batch_size": 2, "drop_last": "yes"}, TypeError, "drop_last"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        HardExampleSampler(ScoreMemory(5), **kwargs)
    with pytest.raises(TypeError, match="memory"):
        HardExampleSampler(np.zeros(5), batch_size=2)


def test_bad_update_changes_nothing():
    memory = ScoreMemory(8)
    sampler = HardExampleSampler(memory, batch_size=4, seed=0)
    batch = next(iter(sampler))
    tree_before = sampler.plan._tree._tree.copy()
    with pytest.raises(ValueError, match="non-finite"):
        sampler.update(batch, np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(ValueError, match="length"):
        sampler.update(batch, np.ones(3))
    with pytest.raises(ValueError, match="out of range"):
        sampler.update(np.array([9]), np.ones(1))
    assert memory.updates == 0 and np.array_equal(sampler.plan._tree._tree, tree_before)


def test_load_state_dict_refuses_a_mismatched_sampler():
    state = HardExampleSampler(ScoreMemory(10), batch_size=4).state_dict()
    with pytest.raises(ValueError, match="batch_size"):
        HardExampleSampler(ScoreMemory(10), batch_size=5).load_state_dict(state)
    with pytest.raises(ValueError, match="policy"):
        HardExampleSampler(ScoreMemory(10), batch_size=4, policy="uniform").load_state_dict(state)


def test_with_index_passes_items_and_attributes_through():
    data = TensorDataset(torch.tensor([5.0, 6.0]))
    data.targets = [1, 0]
    wrapped = WithIndex(data)
    assert wrapped[1] == (1, torch.tensor(6.0)) and len(wrapped) == 2 and wrapped.targets == [1, 0]
    assert WithIndex(["a", "b"])[0] == (0, "a")
    with pytest.raises(TypeError, match="map-style"):
        WithIndex(42)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    from hardmine.testing import run_steps  # spawned processes get no fixtures


    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        memory = ScoreMemory(60)
        sampler = HardExampleSampler(memory, batch_size=4, policy="importance", seed=11)
        batches = run_steps(sampler, 12)
        np.savez(f"{out_dir}/batches{rank}.npz", *batches)  # epoch ends hold a partial global batch: 60 = 7 x 8 + 4
        np.save(f"{out_dir}/scores{rank}.npy", memory.get("score"))
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_draw_one_global_batch_and_share_memory(tmp_path, run_steps):
    mp.spawn(_distributed_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (list(np.load(tmp_path / f"batches{r}.npz").values()) for r in (0, 1))
    assert np.array_equal(np.load(tmp_path / "scores0.npy"), np.load(tmp_path / "scores1.npy"), equal_nan=True)
    single_memory = ScoreMemory(60)
    single = run_steps(HardExampleSampler(single_memory, batch_size=8, policy="importance", seed=11), 12)
    assert len(rank0) == len(rank1) == len(single) and {len(b) for b in rank0} == {4, 2}
    for k, global_batch in enumerate(single):
        assert np.array_equal(np.concatenate([rank0[k], rank1[k]]), global_batch)
    assert np.array_equal(single_memory.get("score"), np.load(tmp_path / "scores0.npy"), equal_nan=True)
