"""Two gloo processes: a bad input on one rank gives every rank the same ValueError, before any data collective.

For each distributed call (HardExampleSampler.update, CrossBatchMemory.mine, mine_hard_negatives with
corpus_sharded=True), rank 1 passes a NaN and then behaves in one of three ways: it exits with the error, it
stays alive without calling anything else, or it catches the error and goes on with good input (as rank 0 does).
The process group has a 10 s timeout, so a call that makes a rank wait in a collective fails the test instead of
hanging it (gloo's default is 30 minutes); each case finishes in a few seconds.
"""

from __future__ import annotations

import datetime
import json
import socket
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import hardmine as hm
from hardmine.metric import BatchHardMiner, CrossBatchMemory
from hardmine.retrieval import mine_hard_negatives

BEHAVIOURS = ("exits", "stays_alive", "goes_on")


def _sampler_call(rank: int, bad: bool, state: dict) -> np.ndarray:
    if "sampler" not in state:
        memory = hm.ScoreMemory(16)
        state["sampler"] = hm.HardExampleSampler(memory, 4, policy="importance", seed=0)
        state["batches"] = iter(state["sampler"])
    sampler = state["sampler"]
    batch = next(state["batches"])
    losses = np.linspace(0.5, 1.0, batch.size) + rank
    if bad:
        losses[1] = np.nan
    sampler.update(batch, losses)
    return sampler.memory.get("score")


def _memory_call(rank: int, bad: bool, state: dict) -> np.ndarray:
    memory = state.setdefault("memory", CrossBatchMemory(32, 4))
    state["step"] = state.get("step", -1) + 1
    emb = torch.randn(6, 4, generator=torch.Generator().manual_seed(10 * rank + state["step"]))
    if bad:
        emb[2, 1] = float("nan")
    memory.mine(BatchHardMiner(), emb, torch.arange(6) % 3, step=state["step"])
    return memory.embeddings.numpy()


def _mining_call(rank: int, bad: bool, state: dict) -> np.ndarray:
    rng = np.random.default_rng(0)
    q, c = rng.standard_normal((9, 5)).astype(np.float32), rng.standard_normal((40, 5)).astype(np.float32)
    shard = (c[:15] if rank == 0 else c[15:]).copy()
    if bad:
        shard[3, 0] = np.nan
    found = mine_hard_negatives(q, shard, [[i] for i in range(9)], num_negatives=3, corpus_sharded=True,
                                progress=False)
    return found.indices


CALLS = {"sampler_update": _sampler_call, "cross_batch_memory_mine": _memory_call,
         "mine_hard_negatives_sharded": _mining_call}


def worker(rank: int, port: int, out_dir, call: str, behaviour: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=datetime.timedelta(seconds=10))
    try:
        _behave(rank, out_dir, call, behaviour)
    finally:
        dist.destroy_process_group()


def _behave(rank: int, out_dir, call: str, behaviour: str) -> None:
    state: dict = {}
    record = {"error": None}
    started = time.monotonic()
    try:
        CALLS[call](rank, rank == 1, state)
    except ValueError as error:
        record["error"] = f"{type(error).__name__}: {error}"
        record["seconds"] = time.monotonic() - started
        (out_dir / f"rank{rank}.json").write_text(json.dumps(record))
        if rank == 1 and behaviour == "exits":
            raise
        if rank == 1 and behaviour == "stays_alive":
            time.sleep(3.0)  # alive, but in no collective
            return
    else:
        (out_dir / f"rank{rank}.json").write_text(json.dumps(record))
        return
    if behaviour == "goes_on":
        result = CALLS[call](rank, False, state)
        np.save(out_dir / f"result{rank}.npy", result)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_pair(tmp_path, call: str, behaviour: str) -> list[int | None]:
    context = mp.get_context("spawn")  # fork after other tests started torch threads can deadlock a child
    port = free_port()
    processes = [context.Process(target=worker, args=(rank, port, tmp_path, call, behaviour)) for rank in (0, 1)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=60)
    for p in processes:
        if p.is_alive():  # a hang: fail, but never leave a process behind
            p.kill()
            p.join()
    return [p.exitcode for p in processes]


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_rank_raises_the_same_error_naming_the_bad_rank(tmp_path, call, behaviour):
    exitcodes = run_pair(tmp_path, call, behaviour)
    assert exitcodes[0] == 0, f"rank 0 ended with exit code {exitcodes[0]} (-9: it hung and was killed)"
    assert (exitcodes[1] != 0) == (behaviour == "exits")
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert records[0]["error"] is not None and records[0]["error"] == records[1]["error"]
    assert "rank 1 had bad input" in records[0]["error"]
    assert "non-finite" in records[0]["error"]  # the cause (a NaN), not a lost connection
    assert records[0]["seconds"] < 8.0  # no wait for a collective's timeout
    if behaviour == "goes_on":  # the next, good call keeps the ranks in step
        results = [np.load(tmp_path / f"result{rank}.npy") for rank in (0, 1)]
        np.testing.assert_array_equal(results[0], results[1])
