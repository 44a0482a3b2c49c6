"""Two gloo processes on 127.0.0.1: each searches part of the corpus; the merged result equals one process's."""

import socket

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from hardmine.retrieval import mine_hard_negatives

KW = dict(num_negatives=6, range_min=1, relative_margin=0.05, sampling="random", seed=3, batch_size=7,
          progress=False)


def data():
    rng = np.random.default_rng(0)
    q, c = rng.standard_normal((25, 10)).astype(np.float32), rng.standard_normal((301, 10)).astype(np.float32)
    positives = [rng.choice(301, size=1 + i % 3, replace=False).tolist() for i in range(25)]
    return q, c, positives


def worker(rank, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        q, c, positives = data()
        full = mine_hard_negatives(q, c, positives, corpus_sharded=False, **KW)
        shard = c[:120] if rank == 0 else c[120:].copy()
        sharded = mine_hard_negatives(q, shard, positives, corpus_sharded=True, **KW)
        for mode, got in (("full", full), ("sharded", sharded)):
            np.save(out_dir / f"{mode}_indices{rank}.npy", got.indices)
            np.save(out_dir / f"{mode}_positive{rank}.npy", got.positive_scores)
        if rank == 1:
            shard[7, 0] = np.nan
        try:
            mine_hard_negatives(q, shard, positives, corpus_sharded=True, **KW)
        except (ValueError, RuntimeError) as err:
            (out_dir / f"error{rank}.txt").write_text(f"{type(err).__name__}: {err}")
    finally:
        dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("gloo")
    mp.spawn(worker, args=(free_port(), out_dir), nprocs=2, join=True)
    return out_dir


@pytest.mark.parametrize("mode", ["full", "sharded"])
def test_two_ranks_equal_one_process(outputs, mode):
    q, c, positives = data()
    single = mine_hard_negatives(q, c, positives, **KW)
    for rank in (0, 1):
        np.testing.assert_array_equal(np.load(outputs / f"{mode}_indices{rank}.npy"), single.indices)
        np.testing.assert_allclose(np.load(outputs / f"{mode}_positive{rank}.npy"), single.positive_scores, rtol=1e-6)
    assert (single.indices >= 120).any() and ((single.indices >= 0) & (single.indices < 120)).any()


def test_a_bad_shard_fails_every_rank_with_the_same_error(outputs):
    errors = [(outputs / f"error{rank}.txt").read_text() for rank in (0, 1)]
    assert errors[0] == errors[1]
    assert "rank 1 had bad input" in errors[0]
    assert "corpus_emb has a non-finite value (NaN or inf) in row 7" in errors[0]
