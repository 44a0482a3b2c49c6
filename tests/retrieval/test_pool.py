import functools

import numpy as np
import pytest
import torch

from hardmine.retrieval import mine_hard_negatives
from hardmine.retrieval.pool import NegativePool


class Encoder:
    """A linear 'model' over fixed features; `rotate` simulates training steps changing it."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.q, self.c = rng.standard_normal((30, 8)), rng.standard_normal((200, 8))
        self.w = np.eye(8)
        self.calls = 0

    def queries(self, ids):
        return (self.q[ids] @ self.w).astype(np.float32)

    def corpus(self, ids):
        self.calls += 1
        return (self.c[ids] @ self.w).astype(np.float32)

    def rotate(self, amount, seed=1):
        self.w = self.w + amount * np.random.default_rng(seed).standard_normal((8, 8))


def make_pool(enc, **kw):
    mine = functools.partial(mine_hard_negatives, positives=[[i] for i in range(30)], num_negatives=4,
                             sampling="random", progress=False)
    return NegativePool(enc.queries, enc.corpus, mine, num_queries=30, corpus_size=200, **kw)


def test_schedule_refresh_and_changed_count():
    enc = Encoder()
    pool = make_pool(enc, refresh_every=10)
    assert pool.step(0).reason == "initial"
    first = pool.negatives(np.arange(30)).copy()
    assert pool.step(5) is None
    enc.rotate(1.0)
    report = pool.step(10)
    assert report.reason == "schedule" and report.total == 120
    now = pool.negatives(np.arange(30))
    expected = sum(len(set(n) - set(o)) for n, o in zip(now.tolist(), first.tolist()))
    assert report.changed == expected > 0


def test_drift_triggers_refresh_only_when_the_encoder_moved():
    enc = Encoder()
    pool = make_pool(enc, refresh_every=None, drift_threshold=0.05, drift_check_every=2, num_probe=50)
    pool.step(0)
    assert pool.step(2) is None and pool.drift() == pytest.approx(0.0, abs=1e-6)
    enc.rotate(0.5)
    report = pool.step(4)
    assert report.reason == "drift" and report.drift > 0.05
    assert pool.step(6) is None  # probes were re-encoded at the refresh


def test_state_round_trip_is_exact():
    enc = Encoder()
    pool = make_pool(enc, refresh_every=3, drift_threshold=0.5)
    pool.step(0)
    enc.rotate(0.3)
    pool.step(3)
    state = pool.state_dict()
    other = make_pool(Encoder(), refresh_every=3, drift_threshold=0.5)
    other.load_state_dict(state)
    again = other.state_dict()
    assert state.keys() == again.keys()
    for key in state:
        if isinstance(state[key], torch.Tensor):  # state_dict holds tensors: save_state can write it
            assert torch.equal(state[key], again[key])
        else:
            assert state[key] == again[key]
    np.testing.assert_array_equal(other.negatives([1, 2]), pool.negatives([1, 2]))
    # resumed schedules agree: both refresh at step 6 with the same seed, so the same negatives
    other.encode_queries, other.encode_corpus = enc.queries, enc.corpus
    assert pool.step(6).reason == other.step(6).reason == "schedule"
    np.testing.assert_array_equal(other.negatives(np.arange(30)), pool.negatives(np.arange(30)))


def test_negatives_before_mining_and_bad_ids():
    pool = make_pool(Encoder())
    with pytest.raises(RuntimeError, match="call step"):
        pool.negatives([0])
    pool.step(0)
    with pytest.raises(ValueError, match=r"query_ids out of range \[0, 30\)"):
        pool.negatives([30])
    with pytest.raises(ValueError, match="refresh_every must be >= 1"):
        make_pool(Encoder(), refresh_every=0)


def test_start_from_given_negatives_without_mining():
    calls = []

    def mine(q, c, seed):
        calls.append(1)
        raise AssertionError("start_from must not mine")

    pool = NegativePool(lambda ids: np.ones((len(ids), 4), np.float32), lambda ids: np.ones((len(ids), 4), np.float32),
                        mine, num_queries=3, corpus_size=10, refresh_every=None, num_probe=4)
    report = pool.start_from(np.array([[1, 2], [3, -1], [-1, -1]]), step=5)
    assert report.reason == "given" and report.changed == 3 and not calls
    np.testing.assert_array_equal(pool.negatives([1]), [[3, -1]])
    for bad in (np.zeros((2, 2), np.int64), np.array([[10, 0], [0, 0], [0, 0]]), np.zeros((3, 2))):
        with pytest.raises(ValueError, match="indices"):
            pool.start_from(bad)


def test_history_is_bounded_with_refresh_every_1_and_seeds_keep_counting(monkeypatch):
    monkeypatch.setattr(NegativePool, "MAX_HISTORY", 3)
    enc = Encoder()
    seeds = []

    def mine(q, c, seed):
        seeds.append(seed)
        return mine_hard_negatives(q, c, positives=[[i] for i in range(30)], num_negatives=2, progress=False)

    pool = NegativePool(enc.queries, enc.corpus, mine, num_queries=30, corpus_size=200, refresh_every=1)
    for step in range(8):
        pool.step(step)
    assert [r.step for r in pool.history] == [5, 6, 7] and pool.refreshes == 8
    assert len(set(seeds)) == 8  # a bounded history does not repeat a seed
    state = pool.state_dict()
    resumed = NegativePool(enc.queries, enc.corpus, mine, num_queries=30, corpus_size=200, refresh_every=1)
    resumed.load_state_dict(state)
    assert resumed.refreshes == 8 and [r.step for r in resumed.history] == [5, 6, 7]
    state["refreshes"] = 2
    with pytest.raises(ValueError, match=r"state\['refreshes'\] must be an integer >= 3"):
        resumed.load_state_dict(state)
    del state["refreshes"]  # a state saved before the count: every refresh is in its history
    resumed.load_state_dict(state)
    assert resumed.refreshes == 3
