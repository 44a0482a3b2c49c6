"""Two gloo processes whose inputs to a distributed call differ in what must match (mine_hard_negatives' query
count, dimension, dtype, num_negatives, corpus size and positives; CrossBatchMemory's size; the statistics given
to HardExampleSampler.update): every rank raises the same DisagreementError naming the field and each rank's value,
before any data collective: no abort, no hang (`run_two` kills a rank that runs past its timeout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine.metric import BatchHardMiner, CrossBatchMemory
from hardmine.retrieval import mine_hard_negatives
from tests.distributed.spawn import run_two


def _mine(rank: int, settings: list[dict]) -> list[list[int]]:
    args = {"queries": 9, "dim": 5, "dtype": np.float32, "num_negatives": 3, "corpus": 40, "sharded": False,
            "positives": None, **settings[rank]}
    rng = np.random.default_rng(0)
    q = rng.standard_normal((args["queries"], args["dim"])).astype(args["dtype"])
    c = rng.standard_normal((args["corpus"], args["dim"])).astype(np.float32)
    if args["sharded"]:
        c = c[:15] if rank == 0 else c[15:]
    positives = args["positives"] or [[i] for i in range(args["queries"])]
    found = mine_hard_negatives(q, c, positives, num_negatives=args["num_negatives"], batch_size=4,
                                corpus_sharded=args["sharded"], progress=False)
    return found.indices.tolist()


MINING = {"queries": ({"queries": 9}, {"queries": 7}, "queries: rank 0 has 9, rank 1 has 7"),
          "queries sharded": ({"queries": 9, "sharded": True}, {"queries": 7, "sharded": True},
                              "queries: rank 0 has 9, rank 1 has 7"),
          "dim": ({"dim": 5}, {"dim": 6}, "dim: rank 0 has 5, rank 1 has 6"),
          "dtype": ({"dtype": np.float32}, {"dtype": np.float16}, "dtype: rank 0 has 'float32', rank 1 has 'float16'"),
          "num_negatives": ({"num_negatives": 3}, {"num_negatives": 2}, "num_negatives: rank 0 has 3, rank 1 has 2"),
          "corpus": ({"corpus": 40}, {"corpus": 30}, "corpus rows: rank 0 has 40, rank 1 has 30"),
          "corpus_sharded": ({"sharded": True}, {"sharded": False},
                             "corpus_sharded: rank 0 has True, rank 1 has False"),
          "positives": ({}, {"positives": [[i, i + 9] for i in range(9)]}, "positives: rank 0 has (array(")}


@pytest.mark.parametrize("case", sorted(MINING))
def test_mining_ranks_that_differ_raise_the_same_error_naming_the_field(tmp_path, case):
    first, second, expected = MINING[case]
    ranks = run_two(tmp_path, _mine, [first, second], timeout=60)
    assert not any(r.get("hung") or "exitcode" in r for r in ranks), ranks  # no hang, no abort
    errors = [r.get("error") for r in ranks]
    assert errors[0] is not None and errors[0] == errors[1], ranks
    assert errors[0].startswith("DisagreementError: mine_hard_negatives") and expected in errors[0], errors[0]


@pytest.mark.parametrize("sharded", [False, True])
def test_alike_mining_ranks_agree(tmp_path, sharded):
    ranks = run_two(tmp_path, _mine, [{"sharded": sharded}, {"sharded": sharded}], timeout=60)
    assert "value" in ranks[0] and ranks[0]["value"] == ranks[1]["value"], ranks


def _memory(rank: int, settings: list[dict]) -> list[list[float]]:
    args = {"size": 16, "embedding_dim": 4, **settings[rank]}
    resume = args.pop("resume", False)
    memory = CrossBatchMemory(**args)
    if resume:  # a state saved by a rank-local memory after one batch of 3
        other = CrossBatchMemory(16, 4, gather_distributed=False)
        other.enqueue(torch.ones(3, 4), torch.zeros(3, dtype=torch.int64), step=0)
        memory.load_state_dict(other.state_dict())
    for step in range(3):
        emb = torch.randn(6, 4, generator=torch.Generator().manual_seed(10 * rank + step))
        memory.mine(BatchHardMiner(), emb, torch.arange(6) % 3, step=step)
    return memory.embeddings.tolist()


MEMORY = {"size": ({"size": 8}, {"size": 16}, "size: rank 0 has 8, rank 1 has 16"),
          "max_age": ({"max_age": 1}, {}, "max_age: rank 0 has 1, rank 1 has None"),
          "loaded state": ({}, {"resume": True}, "cursor: rank 0 has 0, rank 1 has 3"),
          "embedding_dim": ({}, {"embedding_dim": 5}, "embedding_dim: rank 0 has 4, rank 1 has 5"),
          "dtype": ({"dtype": torch.float16}, {}, "dtype: rank 0 has 'torch.float16', rank 1 has 'torch.float32'")}


@pytest.mark.parametrize("case", sorted(MEMORY))
def test_cross_batch_memories_that_differ_raise_the_same_error_naming_the_field(tmp_path, case):
    first, second, expected = MEMORY[case]
    ranks = run_two(tmp_path, _memory, [first, second], timeout=60)
    assert not any(r.get("hung") or "exitcode" in r for r in ranks), ranks
    errors = [r.get("error") for r in ranks]
    assert errors[0] is not None and errors[0] == errors[1], ranks
    assert errors[0].startswith("DisagreementError: CrossBatchMemory") and expected in errors[0], errors[0]


def test_alike_cross_batch_memories_agree_and_hold_the_same_entries(tmp_path):
    ranks = run_two(tmp_path, _memory, [{}, {}], timeout=60)
    assert "value" in ranks[0] and ranks[0]["value"] == ranks[1]["value"], ranks


def _update(rank: int, settings: list[dict]) -> list[float]:
    sampler = hm.HardExampleSampler(hm.ScoreMemory(32), 4, policy="importance", seed=0)
    for batch in sampler:
        losses = np.linspace(0.1, 1.0, batch.size)
        kind = settings[rank]
        if kind == "nan":
            losses[1] = np.nan
        stats = {"margin": np.linspace(-1.0, 1.0, batch.size)} if kind in ("stats", "nan stats") else {}
        if kind == "nan stats":
            stats["margin"][0] = np.nan
        if kind == "out of range":
            batch = batch + 32
        if kind in ("two stats", "two stats reversed"):  # the same statistics, given in another keyword order
            pairs = [("margin", np.full(batch.size, -0.5)), ("true_prob", np.full(batch.size, 0.25))]
            stats = dict(pairs[::-1] if kind == "two stats reversed" else pairs)
        sampler.update(batch, losses, **stats)
    if kind in ("two stats", "two stats reversed"):
        seen = sampler.memory.get("seen") > 0
        return [float(np.unique(sampler.memory.get(name)[seen])[0]) for name in ("aum", "confidence")]
    return sampler.memory.get("score").tolist()


UPDATES = {"statistics on one rank": (("stats", None), "DisagreementError: HardExampleSampler.update",
                                      "statistics: rank 0 has ['margin'], rank 1 has []"),
           "statistics on the other rank": ((None, "stats"), "DisagreementError: HardExampleSampler.update",
                                            "statistics: rank 0 has [], rank 1 has ['margin']"),
           "NaN loss on one rank": (("nan", None), "AgreedError: HardExampleSampler.update", "rank 0 had bad input"),
           "NaN statistic on one rank": (("stats", "nan stats"), "AgreedError: HardExampleSampler.update",
                                         "rank 1 had bad input"),
           "indices out of range on one rank": ((None, "out of range"), "AgreedError: HardExampleSampler.update",
                                                "rank 1 had bad input")}


@pytest.mark.parametrize("case", sorted(UPDATES))
def test_sampler_updates_that_differ_raise_on_every_rank(tmp_path, case):
    kinds, start, expected = UPDATES[case]
    ranks = run_two(tmp_path, _update, list(kinds), timeout=60)
    assert not any(r.get("hung") or "exitcode" in r for r in ranks), ranks
    errors = [r.get("error") for r in ranks]
    assert errors[0] is not None and errors[0] == errors[1], ranks
    assert errors[0].startswith(start) and expected in errors[0], errors[0]


def test_statistics_given_in_another_order_on_each_rank_stay_with_their_names(tmp_path):
    ranks = run_two(tmp_path, _update, ["two stats", "two stats reversed"], timeout=60)
    assert ranks[0].get("value") == ranks[1].get("value") == [-0.5, 0.25], ranks


def test_statistics_on_every_rank_are_accepted(tmp_path):
    ranks = run_two(tmp_path, _update, ["stats", "stats"], timeout=60)
    assert "value" in ranks[0] and ranks[0]["value"] == ranks[1]["value"], ranks


BAD_MINING = {"no queries": {"queries": 0}, "num_negatives 0": {"num_negatives": 0},
              "positive out of range": {"positives": [[100]] * 9}}


@pytest.mark.parametrize("case", sorted(BAD_MINING))
def test_mining_input_bad_on_one_rank_raises_on_every_rank(tmp_path, case):
    ranks = run_two(tmp_path, _mine, [{}, BAD_MINING[case]], timeout=60)
    assert not any(r.get("hung") or "exitcode" in r for r in ranks), ranks
    errors = [r.get("error") for r in ranks]
    assert errors[0] is not None and errors[0] == errors[1], ranks
    assert errors[0].startswith("AgreedError: mine_hard_negatives: rank 1 had bad input"), errors[0]
