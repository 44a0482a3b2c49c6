"""HardStream: exact resume mid-epoch with DataLoader workers (a `datasets` stream and a plain generator), the
partial last batch, and bad input refused before anything changes."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import hardmine as hm
from hardmine.sampling.policies import OnlineTopLossPolicy, RhoLossPolicy
from hardmine.streams.source import EPOCH_SPAN

datasets = pytest.importorskip("datasets")


def _rows(shard):
    for i in range(37):  # 4 shards of 37: every worker's last batch is partial
        yield {"x": torch.tensor([shard * 100.0 + i, (i * 7919 % 13) / 13.0]), "y": (shard + i) % 3}


def _gen(shards):
    for shard in shards:  # datasets gives each of its data sources a sublist of gen_kwargs' list
        yield from _rows(shard)


def hf_stream():
    ds = datasets.IterableDataset.from_generator(_gen, gen_kwargs={"shards": [0, 1, 2, 3]}).with_format("torch")
    return ds.shuffle(seed=3, buffer_size=16)


def make(source, workers=2, replay=True):
    return hm.HardStream(source, batch_size=4, candidates=3, policy="online_top_loss", num_workers=workers,
                         replay=hm.streams.HardReplay(capacity=10, fraction=0.25, half_life=5.0) if replay else None)


def score(batch):
    """A deterministic per-sample 'loss' of a batch: what a model would find hard."""
    return (batch["x"][:, 1] * 10 + batch["y"]).double()


def run(stream, epochs, stop_after=None):
    """(what each step back-propagated) over `epochs`; stops after `stop_after` steps, returning early."""
    seen = []
    for epoch in epochs:
        stream.set_epoch(epoch)
        for ids, batch in DataLoader(stream, batch_size=None, num_workers=stream.num_workers):
            stream.update(ids, score(batch))
            kept, chosen = stream.select(ids, batch)
            seen.append((ids.tolist(), kept.tolist(), chosen["x"].tolist(), stream.weights(kept).tolist()))
            if stop_after is not None and len(seen) == stop_after:
                return seen
    return seen


@pytest.mark.parametrize("make_source", [hf_stream, lambda: [s for shard in range(4) for s in _rows(shard)]],
                         ids=["datasets", "list"])
def test_resume_mid_epoch_with_two_workers_equals_the_uninterrupted_run(make_source, tmp_path):
    whole = run(make(make_source()), epochs=[0, 1])
    assert len(whole) > 10
    first = make(make_source())
    head = run(first, epochs=[0], stop_after=7)  # odd: the next batch is worker 1's
    hm.save_state(first.state_dict(), tmp_path / "stream.pt")
    resumed = make(make_source())
    resumed.load_state_dict(hm.load_state(tmp_path / "stream.pt"))
    tail = run(resumed, epochs=[0, 1])
    assert head + tail == whole
    assert len(resumed.replay) == 10


def test_batches_are_candidates_times_batch_size_and_the_last_is_kept_or_dropped():
    samples = [(torch.tensor([float(i)]), i % 2) for i in range(50)]
    for drop_last, sizes in ((False, [12] * 4 + [2]), (True, [12] * 4)):
        stream = hm.HardStream(samples, batch_size=4, candidates=3, policy="online_top_loss", drop_last=drop_last)
        got = []
        for ids, (x, y) in DataLoader(stream, batch_size=None):
            got.append(ids.numel())
            assert ids.dtype == torch.int64 and torch.equal(ids, x[:, 0].long())  # one shard: id = position
            stream.update(ids, x[:, 0])
            kept, _ = stream.select(ids, (x, y))
            assert kept.numel() == -(-ids.numel() // 3)  # ceil(C / candidates): 4, or 1 of the last 2
        assert got == sizes


def test_a_malformed_sample_is_named_by_its_stream_position():
    samples = [(torch.zeros(3), 0)] * 9 + [(torch.zeros(4), 0)] + [(torch.zeros(3), 0)] * 5
    stream = hm.HardStream(samples, batch_size=4, candidates=2, policy="online_top_loss")
    with pytest.raises(ValueError, match=r"stream position 9 of shard 0 in epoch 0 \(stream id 9\)"):
        list(stream)


def test_a_state_of_another_stream_or_capacity_is_refused_before_anything_changes():
    samples = list(_rows(0))
    stream = make(samples, workers=0)
    run(stream, epochs=[0], stop_after=2)
    state = stream.state_dict()
    other = hm.HardStream(samples, batch_size=4, candidates=3, policy="online_top_loss",
                          replay=hm.streams.HardReplay(capacity=11, fraction=0.25, half_life=5.0))
    before = other.state_dict()
    with pytest.raises(ValueError, match="capacity"):
        other.load_state_dict(state)
    for name, changed in (("batch_size", dict(batch_size=5)), ("num_workers", dict(num_workers=2))):
        kwargs = dict(batch_size=4, candidates=3, policy="online_top_loss", num_workers=0,
                      replay=hm.streams.HardReplay(capacity=10, fraction=0.25, half_life=5.0)) | changed
        with pytest.raises(ValueError, match=name):
            hm.HardStream(samples, **kwargs).load_state_dict(state)
    with pytest.raises(ValueError, match="the state is of the stream"):
        make(hf_stream(), workers=0).load_state_dict(state)
    after = other.state_dict()
    assert torch.equal(after["selection"]["replay"]["used"], before["selection"]["replay"]["used"])
    same = make(samples, workers=0)
    before = same.state_dict()
    bad_policy = {**state["selection"], "policy": {**state["selection"]["policy"], "state": {}}}
    for broken, match in (({**state, "consumed": torch.tensor([-1])}, "consumed"),
                          ({**state, "selection": bad_policy}, "policy 'online_top_loss' state")):
        with pytest.raises(ValueError, match=match):
            same.load_state_dict(broken)
        after = same.state_dict()
        assert after["epoch"] == before["epoch"] and torch.equal(after["consumed"], before["consumed"])
        assert after["selection"]["steps"] == 0 and not after["selection"]["replay"]["used"].any()


def test_bad_calls_name_the_argument():
    samples = [(torch.tensor([float(i)]), i % 2) for i in range(40)]
    with pytest.raises(ValueError, match="candidates must be 1"):
        hm.HardStream(samples, batch_size=4, candidates=2, policy="uniform")
    with pytest.raises(ValueError, match="per-sample memory of known size N"):
        hm.HardStream(samples, batch_size=4, policy="importance")
    with pytest.raises(ValueError, match="rho_loss needs reference="):
        hm.HardStream(samples, batch_size=4, candidates=2, policy="rho_loss")
    with pytest.raises(ValueError, match="not irreducible_loss"):
        hm.HardStream(samples, batch_size=4, candidates=2, policy=RhoLossPolicy(np.ones(40), candidates=2),
                      reference=lambda batch: torch.zeros(8))
    with pytest.raises(ValueError, match="guards"):
        hm.HardStream(samples, batch_size=4, candidates=2,
                      policy=OnlineTopLossPolicy(candidates=2, guards=[hm.NoiseGuard()]))
    with pytest.raises(ValueError, match=r"read by 0 DataLoader workers"):
        list(hm.HardStream(samples, batch_size=4, num_workers=2))
    stream = hm.HardStream(samples, batch_size=4, candidates=2, policy="online_top_loss")
    ids, (x, _) = next(iter(stream))
    with pytest.raises(ValueError, match="per_sample_loss has 1 non-finite"):
        stream.update(ids, torch.tensor([1.0, float("nan")] + [0.0] * 6))
    with pytest.raises(ValueError, match="not a stream id of epoch 0"):
        stream.update(ids + EPOCH_SPAN, x[:, 0])
    with pytest.raises(ValueError, match="call update"):
        stream.select(ids, (x, x))
    assert stream.state_dict()["consumed"].tolist() == [0]  # nothing consumed by the refused calls
    stream.update(ids, x[:, 0])
    assert stream.state_dict()["consumed"].tolist() == [8]


def test_a_state_with_a_replay_buffer_is_refused_by_a_stream_without_one_and_the_reverse():
    samples = list(_rows(0))
    with_replay, without = make(samples, workers=0), make(samples, workers=0, replay=False)
    run(with_replay, epochs=[0], stop_after=2)
    run(without, epochs=[0], stop_after=1)
    state, before = with_replay.state_dict(), without.state_dict()
    assert state["selection"]["replay"]["used"].any() and before["selection"]["replay"] is None
    with pytest.raises(ValueError, match=r"state\['replay'\] is a state, but this HardStream selection has no"):
        without.load_state_dict(state)
    assert torch.equal(without.state_dict()["consumed"], before["consumed"])  # nothing assigned
    with pytest.raises(ValueError, match=r"state\['replay'\] is None, but this HardStream selection has a"):
        make(samples, workers=0).load_state_dict(before)
    assert without.state_dict()["config"] == {"batch_size": 4, "candidates": 3, "drop_last": False,
                                              "num_workers": 0, "seed": 0}
