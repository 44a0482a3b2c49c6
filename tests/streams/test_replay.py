"""HardReplay: eviction by priority and age against brute force, seeded draws and exact state, its memory per
sample, the replayed share of a batch, and the uniform policy refusing it (its unbiased mean would break)."""

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine.streams import HardReplay


def batch(ids):
    ids = np.asarray(ids, dtype=np.int64)
    return {"x": torch.from_numpy(ids).float()[:, None].repeat(1, 3), "y": torch.from_numpy(ids % 7)}


def test_the_buffer_holds_the_largest_priorities_decayed_by_age():
    rng = np.random.default_rng(0)
    replay = HardReplay(capacity=6, half_life=3.0)
    entries = {}  # brute force: id -> (priority, step)
    for step in range(12):
        ids = np.arange(step * 5, step * 5 + 5)
        prio = rng.normal(size=5) * 3
        replay.offer(ids, batch(ids), prio, step)
        entries.update({int(i): (float(p), step) for i, p in zip(ids, prio)})
        key = {i: (p * 0.5 ** ((step - s) / 3.0) if p >= 0 else p / 0.5 ** ((step - s) / 3.0))
               for i, (p, s) in entries.items()}
        entries = {i: entries[i] for i in sorted(key, key=lambda i: -key[i])[:6]}
        held = sorted(int(i) for i in replay._ids[replay._used])
        assert held == sorted(entries)
        stored = replay._leaves[0][torch.from_numpy(replay._used)][:, 0]  # the tensors travel with the ids
        assert sorted(stored.long().tolist()) == held


def test_a_stale_hard_sample_gives_way_to_fresh_ones():
    replay = HardReplay(capacity=1, half_life=2.0)
    replay.offer(np.array([0]), batch([0]), np.array([8.0]), step=0)
    replay.offer(np.array([1]), batch([1]), np.array([3.0]), step=2)  # 8 / 2 = 4 > 3: kept
    assert replay._ids[0] == 0
    replay.offer(np.array([2]), batch([2]), np.array([3.0]), step=4)  # 8 / 4 = 2 < 3: evicted
    assert replay._ids[0] == 2


def test_draws_are_seeded_distinct_and_resume_exactly():
    replay = HardReplay(capacity=20, seed=5)
    replay.offer(np.arange(20), batch(np.arange(20)), np.arange(20.0), step=0)
    state = replay.state_dict()
    first = [replay.draw(7, 1)[0].tolist() for _ in range(3)]
    assert all(len(set(d)) == 7 for d in first) and first[0] != first[1]
    again = HardReplay(capacity=20, seed=5)
    again.load_state_dict(state)
    ids, drawn = again.draw(7, 1)
    assert ids.tolist() == first[0] and torch.equal(drawn["x"][:, 0].long(), torch.from_numpy(ids))
    with pytest.raises(ValueError, match="capacity"):
        HardReplay(capacity=21, seed=5).load_state_dict(state)


def test_bytes_per_sample_counts_the_tensors_and_the_entry():
    replay = HardReplay(capacity=4)
    assert replay.bytes_per_sample() is None
    replay.offer(np.arange(2), batch(np.arange(2)), np.ones(2), step=0)
    assert replay.bytes_per_sample() == 3 * 4 + 8 + 25  # x float32 [3], y int64, id + priority + step + flag


def test_a_batch_of_another_structure_is_refused_before_anything_changes():
    replay = HardReplay(capacity=4)
    replay.offer(np.arange(2), batch(np.arange(2)), np.ones(2), step=0)
    with pytest.raises(ValueError, match="do not match the replay buffer"):
        replay.offer(np.arange(2, 4), {"x": torch.zeros(2, 5), "y": torch.zeros(2)}, np.ones(2) * 9, step=1)
    assert len(replay) == 2 and replay._ids[replay._used].tolist() == [0, 1]


def test_replay_mixes_its_fraction_into_the_kept_batch_and_the_uniform_policy_refuses_it():
    data = [torch.tensor([float(i)]) for i in range(400)]
    stream = hm.HardStream(data, 6, 4, "online_top_loss", replay=HardReplay(capacity=30, fraction=0.25))
    replayed = 0
    for ids, x in stream:
        stream.update(ids, x[:, 0] % 17)  # hard: a large remainder
        held = len(stream.replay)
        kept, chosen = stream.select(ids, x)
        fresh = -(-ids.numel() // 4)
        assert kept.numel() == fresh + min(held, round(0.25 / 0.75 * fresh))
        assert torch.equal(chosen[:, 0].long(), kept)  # the replayed rows are the samples of their ids
        assert torch.equal(stream.weights(kept), torch.ones(kept.numel()))
        replayed += kept.numel() - fresh
        assert not set(kept[fresh:].tolist()) & set(ids.tolist())  # drawn before this batch entered
    assert replayed > 0 and (chosen[fresh:, 0] % 17 >= 13).all()  # the buffer holds hard samples
    with pytest.raises(ValueError, match="unbiased"):
        hm.HardStream(data, 6, policy="uniform", replay=HardReplay(8))
