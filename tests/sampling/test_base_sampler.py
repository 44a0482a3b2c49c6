"""The user's sampler as the candidate source (`base_sampler=`): a candidate policy selects the highest losses among
the base's draws while the draws keep the base's class proportions; a priority policy reweights relative to the
base's distribution; a pass takes the base's order; resume is exact with DataLoader workers; bad bases are refused."""

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from scipy.stats import chisquare
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    RandomSampler,
    TensorDataset,
    WeightedRandomSampler,
)

import hardmine as hm
from hardmine.distributed import DisagreementError
from hardmine.testing import policy_params

COUNTS = (400, 150, 50)  # an imbalanced data set of three classes
LABELS = np.repeat(np.arange(3), COUNTS)
N = LABELS.size
LOSS = np.random.default_rng(7).permutation(N).astype(np.float64) / N + 0.01  # distinct, independent of the class


def balanced(seed: int = 3, num_samples: int = N) -> WeightedRandomSampler:
    """The user's class-balanced sampler: every class a third of the draws in expectation."""
    weights = torch.as_tensor(1.0 / np.asarray(COUNTS)[LABELS], dtype=torch.float64)
    return WeightedRandomSampler(weights, num_samples, replacement=True, generator=torch.Generator().manual_seed(seed))


def test_candidate_policy_keeps_the_base_proportions_and_selects_the_highest_losses():
    memory = hm.ScoreMemory(N, labels=LABELS)
    batch, candidates = 8, 4
    sampler = hm.HardExampleSampler(memory, batch, policy=hm.build_policy("online_top_loss", candidates=candidates),
                                    base_sampler=balanced(), seed=0)
    drawn, chosen = [], []
    for _ in range(2):
        for idx in sampler:
            sampler.update(idx, torch.from_numpy(LOSS[idx]))
            keep = sampler.weights(idx).numpy() > 0
            brute = idx[np.argsort(-LOSS[idx], kind="stable")[:batch]]  # the B highest losses of the candidates
            assert sorted(idx[keep].tolist()) == sorted(brute.tolist())
            drawn.append(idx)
            chosen.append(idx[keep])
    drawn, chosen = np.concatenate(drawn), np.concatenate(chosen)
    # the candidates are the base sampler's own draws, in its order
    reference = balanced()
    stream = np.concatenate([np.fromiter(reference, dtype=np.int64) for _ in range(-(-drawn.size // N) + 1)])
    assert np.array_equal(drawn, stream[:drawn.size])
    for picked in (drawn, chosen):  # losses independent of the class: the selection keeps the proportions too
        counts = np.bincount(LABELS[picked], minlength=3)
        assert picked.size >= 1000 and chisquare(counts, np.full(3, picked.size / 3)).pvalue > 0.01, counts
    # the same test fails without the base sampler: uniform candidates follow the data's 8:3:1
    plain = hm.HardExampleSampler(hm.ScoreMemory(N, labels=LABELS), batch,
                                  policy=hm.build_policy("online_top_loss", candidates=candidates), seed=0)
    uniform = np.concatenate(list(plain))
    counts = np.bincount(LABELS[uniform], minlength=3)
    assert chisquare(counts, np.full(3, uniform.size / 3)).pvalue < 1e-6


def test_priority_policy_reweights_relative_to_the_base():
    memory = hm.ScoreMemory(N, labels=LABELS)
    memory.update(np.arange(N), LOSS)
    policy = hm.build_policy("importance", alpha=1.0, beta=1.0, mix=0.2)
    sampler = hm.HardExampleSampler(memory, 16, policy=policy, base_sampler=balanced(num_samples=2 * N), seed=1,
                                    chunk=1000)
    p = sampler.policy.priorities(memory)
    batches = list(iter(sampler))[:10]  # one chunk: drawn before any update, from the priorities above
    base = sampler.plan.state["base"]
    expected_p = p[base].mean()  # E_q[p] over the base's draws
    for idx in batches:
        w = sampler.weights(idx).numpy().astype(np.float64)
        ratio = 0.2 + 0.8 * p[idx] / expected_p  # r_i / q_i
        np.testing.assert_allclose(w * ratio, 1.0, rtol=1e-5)  # beta = 1, normalize="none": w = q_i / r_i
    # the draws follow r_i ∝ q_i (0.2 + 0.8 p_i / E_q[p]) per class, not the data's 8:3:1
    draws = np.concatenate(list(sampler.plan.draw(0, 400).indices))
    q = np.bincount(base, minlength=N) / base.size
    r = q * (0.2 + 0.8 * p / expected_p)
    expected = np.bincount(LABELS, weights=r, minlength=3) * draws.size
    assert chisquare(np.bincount(LABELS[draws], minlength=3), expected).pvalue > 0.01


def test_a_pass_takes_the_base_order_and_a_batch_sampler_its_batches():
    gen = torch.Generator().manual_seed(4)
    base = BatchSampler(RandomSampler(range(N), generator=gen), batch_size=10, drop_last=False)
    sampler = hm.HardExampleSampler(hm.ScoreMemory(N), 10, policy="uniform", base_sampler=base)
    got = [idx.tolist() for idx in sampler]
    again = BatchSampler(RandomSampler(range(N), generator=torch.Generator().manual_seed(4)), 10, False)
    assert got == list(again)


def new_run(policy: str, workers: int, base: str):
    memory = hm.ScoreMemory(N, labels=LABELS)
    user = balanced(num_samples=300) if base == "weighted" else BatchSampler(
        RandomSampler(range(N), generator=torch.Generator().manual_seed(9)), 8, drop_last=False)
    sampler = hm.HardExampleSampler(memory, 8, policy=hm.build_policy(policy, **policy_params(policy, N)), seed=5,
                                    base_sampler=user)
    loader = DataLoader(hm.WithIndex(TensorDataset(torch.arange(N))), batch_sampler=sampler, num_workers=workers)
    return memory, sampler, loader


def train(memory, sampler, loader, start_epoch: int, epochs: int, checkpoints: dict | None = None):
    seen = []
    for epoch in range(start_epoch, epochs):
        sampler.set_epoch(epoch)
        for step, (idx, _) in enumerate(loader):
            sampler.update(idx, torch.from_numpy(LOSS[idx.numpy()] * (1 + 0.1 * np.sin(memory.updates))))
            sampler.weights(idx)
            seen.append(idx.tolist())
            if checkpoints is not None and epoch == 1 and step + 1 == len(sampler) // 2:
                checkpoints["mid"] = (sampler.state_dict(), memory.state_dict(), len(seen), 1)
        if checkpoints is not None and epoch == 0:
            checkpoints["end"] = (sampler.state_dict(), memory.state_dict(), len(seen), 1)
    return seen


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(("policy", "base"), [("online_top_loss", "weighted"), ("importance", "weighted"),
                                              ("prune_easy", "weighted"), ("uniform", "batches")])
def test_resume_serves_the_uninterrupted_batches(policy, base, workers):
    memory, sampler, loader = new_run(policy, workers, base)
    checkpoints = {}
    full = train(memory, sampler, loader, 0, 3, checkpoints)
    for name, (sampler_state, memory_state, done, start) in checkpoints.items():
        memory2, sampler2, loader2 = new_run(policy, workers, base)  # a fresh base: its generator from the seed
        memory2.load_state_dict(memory_state)
        sampler2.load_state_dict(sampler_state)
        rest = train(memory2, sampler2, loader2, start, 3)
        assert full[done:] == rest, (name, policy, base)


def test_bad_base_samplers_are_refused_naming_base_sampler():
    memory = hm.ScoreMemory(N)
    with pytest.raises(TypeError, match="base_sampler must be a Sampler.*not iterable"):
        hm.HardExampleSampler(memory, 8, base_sampler=object())
    with pytest.raises(TypeError, match="base_sampler must be a Sampler.*iterator"):
        hm.HardExampleSampler(memory, 8, base_sampler=iter(range(N)))
    with pytest.raises(ValueError, match="generator=None"):
        hm.HardExampleSampler(memory, 8, base_sampler=RandomSampler(range(N)))
    too_wide = WeightedRandomSampler(torch.ones(N + 5), 2000, generator=torch.Generator().manual_seed(0))
    sampler = hm.HardExampleSampler(memory, 8, base_sampler=too_wide)
    with pytest.raises(ValueError, match=rf"base_sampler yielded index 6\d\d .*memory holds N = {N}"):
        next(iter(sampler))
    for item in (1.5, "3", True, [0, 2.0]):
        bad = hm.HardExampleSampler(memory, 8, policy="uniform", base_sampler=[item, 0, 1])
        with pytest.raises(TypeError, match=r"base_sampler must yield integer indices .* item 0"):
            len(bad)


def test_a_state_from_another_source_is_refused_before_anything_changes():
    memory, sampler, _ = new_run("importance", 0, "weighted")
    for idx in sampler:
        sampler.update(idx, torch.from_numpy(LOSS[idx]))
        break
    state = sampler.state_dict()
    plain = hm.HardExampleSampler(hm.ScoreMemory(N, labels=LABELS), 8, policy="importance", seed=5)
    before = plain.state_dict()
    with pytest.raises(ValueError, match="holds a base_sampler's draws, but this sampler has no base_sampler"):
        plain.load_state_dict(state)
    assert plain.state_dict().keys() == before.keys() and plain.epoch == 0 and plain.position == 0
    _, other, _ = new_run("importance", 0, "weighted")
    for idx in other:
        other.update(idx, torch.from_numpy(LOSS[idx]))
        break
    with pytest.raises(ValueError, match="saved by a sampler without base_sampler"):
        other.load_state_dict(plain_started())


def plain_started():
    plain = hm.HardExampleSampler(hm.ScoreMemory(N, labels=LABELS), 8, policy="importance", seed=5)
    idx = next(iter(plain))
    plain.update(idx, torch.from_numpy(LOSS[idx]))
    return plain.state_dict()


def _ddp_worker(rank: int, port: int, out_dir: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        same = hm.HardExampleSampler(hm.ScoreMemory(N), 4, policy="uniform", base_sampler=balanced(), seed=2)
        np.save(f"{out_dir}/same{rank}.npy", np.stack(list(same)[:-1]))
        shard = DistributedSampler(range(N), num_replicas=2, rank=rank, seed=2)
        sharded = hm.HardExampleSampler(hm.ScoreMemory(N), 4, policy="uniform", base_sampler=shard, seed=2)
        try:
            next(iter(sharded))
        except DisagreementError as error:
            (Path(out_dir) / f"error{rank}.txt").write_text(str(error))
    finally:
        torch.distributed.destroy_process_group()


def test_under_ddp_every_rank_cuts_its_share_of_the_same_base_draws(tmp_path):
    """A base that draws alike on every rank: each rank takes its slice of the same global batches; a
    DistributedSampler (each rank its own shard) is refused on every rank, naming the base's draws."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (np.load(tmp_path / f"same{r}.npy") for r in (0, 1))
    single = hm.HardExampleSampler(hm.ScoreMemory(N), 8, policy="uniform", base_sampler=balanced(), seed=2)
    np.testing.assert_array_equal(np.concatenate([rank0, rank1], axis=1), np.stack(list(single)[:-1]))
    for r in (0, 1):
        assert "base_sampler draws" in (tmp_path / f"error{r}.txt").read_text()
