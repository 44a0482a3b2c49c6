"""Golden digests of the sampler's behaviour: the batches it yields, the weights it returns, the memory's columns
(read mid-epoch and after each epoch), its stats and its saved state, for every registered policy, chunked and
not, iterated directly or through a DataLoader with 0 and 2 workers, resumed from a checkpoint, and on 2 gloo
processes.

The digests in golden_sampler.json were recorded on the code before the sampler was split into its parts
(cf16e9c); a refactoring that changes no behaviour keeps every one of them. Re-record (only for a deliberate change
of behaviour, saying so in the commit) with `HARDMINE_RECORD_GOLDEN=1 pytest tests/sampling/test_golden_sampler.py`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import hardmine as hm
from hardmine.testing import policy_params
from tests.distributed.spawn import run_two

GOLDEN = Path(__file__).with_name("golden_sampler.json")
RECORD = os.environ.get("HARDMINE_RECORD_GOLDEN") == "1"
N, BATCH, EPOCHS, SEED = 90, 8, 3, 3  # 12 batches an epoch, the last one of 2
POLICY_NAMES = sorted(hm.POLICIES)


def loss_of(idx: Any, epoch: int, as_tensor: bool) -> Any:
    """A deterministic stand-in for a model's per-sample loss [B] of samples `idx` [B] in `epoch`."""
    i = np.asarray(idx, dtype=np.int64).astype(np.float64)
    loss = np.abs(np.sin(i * 0.37 + epoch * 0.5)) * (1 + i % 7) + 0.01
    return torch.from_numpy(loss.astype(np.float32)) if as_tensor else loss


def statistics_of(idx: Any) -> dict[str, np.ndarray]:
    i = np.asarray(idx, dtype=np.int64)
    return {"true_prob": (i % 10) / 10.0, "correct": (i % 3 == 0).astype(np.int64), "margin": np.cos(i * 0.2)}


class Digest:
    """sha256 digests of separate streams (batches, weights, memory, stats, state), fed with canonical bytes."""

    def __init__(self) -> None:
        self.streams: dict[str, Any] = {}

    def feed(self, stream: str, value: Any) -> None:
        h = self.streams.setdefault(stream, hashlib.sha256())
        _feed(h, value)

    def hex(self) -> dict[str, str]:
        return {name: h.hexdigest() for name, h in sorted(self.streams.items())}


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        h.update(f"a{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for key in sorted(value, key=str):
            _feed(h, str(key))
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for item in value:
            _feed(h, item)
        h.update(b"]")
    elif isinstance(value, float):
        h.update(f"f{value!r}".encode())
    else:
        h.update(f"{type(value).__name__}:{value!r}".encode())


def _memory_columns(memory: hm.ScoreMemory) -> dict[str, Any]:
    return memory.state_dict()


def _stats(sampler: hm.HardExampleSampler) -> dict[str, float]:
    return {k: v for k, v in sampler.stats().items() if k != "mining_seconds"}


def _build(policy: str, chunk: int | None) -> tuple[hm.ScoreMemory, hm.HardExampleSampler]:
    memory = hm.ScoreMemory(N, labels=np.arange(N) % 4)
    built = hm.build_policy(policy, **policy_params(policy, N))
    return memory, hm.HardExampleSampler(memory, BATCH, policy=built, seed=SEED, chunk=chunk)


def _step(digest: Digest, sampler: hm.HardExampleSampler, memory: hm.ScoreMemory, idx: Any, epoch: int, step: int,
          as_tensor: bool, with_stats: bool, probe: bool) -> None:
    """One training step: the batch, its update, its weights (and with `probe` a part's weights and a memory read)."""
    digest.feed("batches", np.asarray(idx))
    stats = statistics_of(idx) if with_stats else {}
    try:
        sampler.update(idx, loss_of(idx, epoch, as_tensor), **stats)
        digest.feed("weights", sampler.weights(idx))
        if probe:
            digest.feed("weights", sampler.weights(idx[::2]))
    except (TypeError, ValueError) as error:  # recorded as behaviour
        digest.feed("weights", f"{type(error).__name__}")
    if probe and step % 4 == 1:
        digest.feed("memory", memory.get("score"))
        digest.feed("memory", memory.updates)


def _epoch_end(digest: Digest, sampler: hm.HardExampleSampler, memory: hm.ScoreMemory) -> None:
    digest.feed("memory", _memory_columns(memory))
    digest.feed("stats", _stats(sampler))
    digest.feed("state", sampler.state_dict())


def run_direct(policy: str, chunk: int | None, as_tensor: bool, with_stats: bool, probe: bool) -> dict[str, str]:
    """Iterate the sampler itself (numpy batches)."""
    memory, sampler = _build(policy, chunk)
    digest = Digest()
    step = 0
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        digest.feed("batches", len(sampler))
        for batch in sampler:
            _step(digest, sampler, memory, batch, epoch, step, as_tensor, with_stats, probe)
            step += 1
        _epoch_end(digest, sampler, memory)
    return digest.hex()


def run_loader(policy: str, chunk: int | None, workers: int) -> dict[str, str]:
    """Iterate a DataLoader over WithIndex (tensor batches of indices; workers draw ahead)."""
    memory, sampler = _build(policy, chunk)
    loader = DataLoader(hm.WithIndex(TensorDataset(torch.arange(N))), batch_sampler=sampler, num_workers=workers)
    digest = Digest()
    step = 0
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        for idx, _ in loader:
            _step(digest, sampler, memory, idx, epoch, step, True, False, False)
            step += 1
        _epoch_end(digest, sampler, memory)
    return digest.hex()


def run_resumed(policy: str, chunk: int | None) -> dict[str, str]:
    """Train to the middle of epoch 1 drawing 3 batches ahead, save both states through torch.save, and continue
    in a new memory and sampler (the digest covers the whole run)."""
    memory, sampler = _build(policy, chunk)
    digest = Digest()
    step = 0
    for epoch in range(2):
        sampler.set_epoch(epoch)
        ahead: list[np.ndarray] = []
        for batch in sampler:
            ahead.append(batch)
            if len(ahead) < 3:
                continue
            current = ahead.pop(0)
            _step(digest, sampler, memory, current, epoch, step, False, False, True)
            step += 1
            if epoch == 1 and sampler.position == 5:
                break
        else:
            for current in ahead:
                _step(digest, sampler, memory, current, epoch, step, False, False, True)
                step += 1
            _epoch_end(digest, sampler, memory)
    buffer = io.BytesIO()
    torch.save({"sampler": sampler.state_dict(), "memory": memory.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    memory, sampler = _build(policy, chunk)
    memory.load_state_dict(saved["memory"])
    sampler.load_state_dict(saved["sampler"])
    for epoch in range(1, EPOCHS):
        sampler.set_epoch(epoch)
        for batch in sampler:
            _step(digest, sampler, memory, batch, epoch, step, False, False, True)
            step += 1
        _epoch_end(digest, sampler, memory)
    return digest.hex()


CASES: dict[str, Any] = {}
for _name in POLICY_NAMES:
    CASES[f"{_name}/direct/chunk-default"] = (run_direct, _name, None, False, False, False)
    CASES[f"{_name}/direct/chunk-1"] = (run_direct, _name, 1, False, False, False)
    CASES[f"{_name}/direct/chunk-5/stats-probe"] = (run_direct, _name, 5, True, True, True)
    CASES[f"{_name}/direct/chunk-1/tensor-probe"] = (run_direct, _name, 1, True, False, True)
    for _workers in (0, 2):
        CASES[f"{_name}/loader-{_workers}/chunk-default"] = (run_loader, _name, None, _workers)
        CASES[f"{_name}/loader-{_workers}/chunk-1"] = (run_loader, _name, 1, _workers)
    CASES[f"{_name}/resumed/chunk-5"] = (run_resumed, _name, 5)
    CASES[f"{_name}/resumed/chunk-1"] = (run_resumed, _name, 1)


def _ddp_cases(rank: int) -> dict[str, dict[str, str]]:
    """Every policy on 2 gloo processes (each rank computes the losses of its own share), chunked and not."""
    out = {}
    for policy in POLICY_NAMES:
        for chunk in (None, 1):
            out[f"{policy}/ddp/chunk-{chunk or 'default'}"] = run_direct(policy, chunk, True, False, False)
    out["importance/ddp/chunk-5/stats-probe"] = run_direct("importance", 5, True, True, True)
    return out


def _load() -> dict[str, Any]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


def _record(key: str, value: Any) -> None:
    golden = _load()
    golden[key] = value
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_sampler_matches_its_golden_digests(case):
    run, *args = CASES[case]
    got = run(*args)
    if RECORD:
        _record(case, got)
        return
    expected = _load().get(case)
    assert expected is not None, f"no golden digest for {case}: record them on the reference commit"
    assert got == expected, case


def test_sampler_under_ddp_matches_its_golden_digests(tmp_path):
    ranks = run_two(tmp_path, _ddp_cases, timeout=300.0)
    assert all("value" in r for r in ranks), ranks
    got = {f"rank{rank}": r["value"] for rank, r in enumerate(ranks)}
    if RECORD:
        _record("ddp", got)
        return
    expected = _load().get("ddp")
    assert expected is not None, "no golden digests for ddp: record them on the reference commit"
    for rank in got:
        for case in sorted(expected[rank]):
            assert got[rank][case] == expected[rank][case], (rank, case)
    assert sorted(got["rank0"]) == sorted(expected["rank0"])
