"""The one variable-length all-gather (`hardmine.distributed.all_gather_rows`): rows of different lengths per rank,
dtype kept (int64 indices above 2^24 exact), run on the device the process group's backend needs."""

from __future__ import annotations

import torch
import torch.distributed as dist

import hardmine.distributed as hmd
from tests.distributed.spawn import run_two


def _gather(rank: int) -> dict:
    big = 2**53 + 1 + rank  # exact only as int64 (a float32 or float64 index would round it)
    idx = torch.tensor([big] * (rank + 1), dtype=torch.int64)
    rows = torch.full((2 * rank + 1, 3), float(rank), dtype=torch.float32)
    gathered_idx, gathered_rows = hmd.all_gather_rows(idx), hmd.all_gather_rows(rows)
    parts = hmd.all_gather_parts(torch.tensor([[rank, 10 * rank]], dtype=torch.int64))
    return {"idx": gathered_idx.tolist(), "idx_dtype": str(gathered_idx.dtype), "rows": gathered_rows.tolist(),
            "rows_dtype": str(gathered_rows.dtype), "parts": [p.tolist() for p in parts],
            "offset": hmd.rank_offset(rank + 1), "device": str(hmd.collective_device())}


def test_all_gather_rows_two_ranks(tmp_path):
    results = run_two(tmp_path, _gather)
    for rank, result in enumerate(results):
        assert "value" in result, result
        value = result["value"]
        assert value["idx"] == [2**53 + 1, 2**53 + 2, 2**53 + 2]
        assert value["idx_dtype"] == "torch.int64" and value["rows_dtype"] == "torch.float32"
        assert value["rows"] == [[0.0] * 3] + [[1.0] * 3] * 3
        assert value["parts"] == [[[0, 0]], [[1, 10]]]
        assert value["offset"] == (0 if rank == 0 else 1)
        assert value["device"] == "cpu"  # gloo


def test_without_a_process_group_it_returns_the_input():
    x = torch.arange(5)
    assert hmd.all_gather_rows(x) is x
    assert hmd.all_gather_parts(x) == [x]
    assert hmd.rank_offset(5) == 0


def test_device_follows_the_backend(monkeypatch):
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert hmd.collective_device() == torch.device("cpu")
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert hmd.collective_device() == torch.device("cuda", 3)
    seen = []
    monkeypatch.setattr(dist, "get_backend", lambda group=None: seen.append(group) or "gloo")
    hmd.collective_device("a group")
    assert seen == ["a group"]  # the group's own backend, not the default group's
