"""What a stream back-propagates, against brute force: the B highest losses (online_top_loss), the B highest
reducible losses (rho_loss, reference model or callable), selective backprop's draws, uniform's everything."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hardmine as hm

B, CANDIDATES = 5, 4


def samples(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 3, generator=g), torch.randint(0, 3, (n,), generator=g)
    return [(x[i], y[i]) for i in range(n)]


def top(scores: np.ndarray, ids: np.ndarray, k: int) -> list[int]:
    """Brute force: the ids of the k largest scores, ties to the smaller id."""
    return [int(ids[i]) for i in sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))[:k]]


def test_online_top_loss_keeps_the_b_highest_losses_of_each_candidate_batch():
    rng = np.random.default_rng(0)
    stream = hm.HardStream(samples(), B, CANDIDATES, "online_top_loss")
    for ids, batch in stream:
        loss = rng.integers(0, 6, ids.numel()).astype(np.float64)  # many ties
        stream.update(ids, loss)
        kept, (x, _) = stream.select(ids, batch)
        expected = top(loss, ids.numpy(), -(-ids.numel() // CANDIDATES))
        assert sorted(kept.tolist()) == sorted(expected)
        assert torch.equal(x, batch[0][torch.isin(ids, kept)])  # the rows of the kept, in stream order
        full = stream.weights(ids)
        assert set(full.unique().tolist()) <= {0.0, 1.0} and int(full.sum()) == kept.numel()
        assert torch.equal(stream.weights(kept), torch.ones(kept.numel()))


@pytest.mark.parametrize("kind", ["model", "callable"])
def test_rho_loss_keeps_the_b_highest_reducible_losses(kind):
    torch.manual_seed(0)
    model, reference = nn.Linear(3, 3), nn.Linear(3, 3)
    ref = reference if kind == "model" else \
        (lambda batch: F.cross_entropy(reference(batch[0]), batch[1], reduction="none").detach())
    stream = hm.HardStream(samples(), B, CANDIDATES, "rho_loss", reference=ref)
    for ids, (x, y) in stream:
        with torch.no_grad():
            loss = F.cross_entropy(model(x), y, reduction="none")
            irreducible = F.cross_entropy(reference(x), y, reduction="none")
        stream.update(ids, loss)
        with pytest.raises(ValueError, match="call select"):
            stream.weights(ids)
        kept, _ = stream.select(ids, (x, y))
        reducible = (loss - irreducible).double().numpy()
        assert sorted(kept.tolist()) == sorted(top(reducible, ids.numpy(), -(-ids.numel() // CANDIDATES)))
    assert stream.policy.stats()["keep_ratio"] == pytest.approx(1 / CANDIDATES, abs=0.01)


def test_rho_loss_and_online_top_loss_differ_with_a_reference():
    torch.manual_seed(1)
    model, reference = nn.Linear(3, 3), nn.Linear(3, 3)
    picks = {}
    for name in ("online_top_loss", "rho_loss"):
        stream = hm.HardStream(samples(), B, CANDIDATES, name,
                               reference=reference if name == "rho_loss" else None)
        picks[name] = []
        for ids, (x, y) in stream:
            with torch.no_grad():
                stream.update(ids, F.cross_entropy(model(x), y, reduction="none"))
            picks[name] += stream.select(ids, (x, y))[0].tolist()
    assert picks["online_top_loss"] != picks["rho_loss"]


def test_selective_backprop_draws_as_the_policy_does_and_weighs_the_kept_as_a_mean():
    stream = hm.HardStream(samples(), 8, 2, "selective_backprop", seed=3)
    twin = hm.build_policy("selective_backprop", seed=3)
    rng = np.random.default_rng(1)
    kept_total = 0
    for ids, batch in stream:
        loss = rng.random(ids.numel())
        stream.update(ids, loss)
        expected = twin.guarded_select(loss, ids.numpy())
        assert np.allclose(stream.weights(ids).numpy(), expected)
        kept, _ = stream.select(ids, batch)
        assert kept.tolist() == ids[torch.from_numpy(expected > 0)].tolist()
        # the kept batch's weights make hm.reduce the mean over the kept, as the full batch's do over all
        full = hm.reduce(torch.from_numpy(loss), stream.weights(ids).double())
        part = hm.reduce(torch.from_numpy(loss)[torch.from_numpy(expected > 0)], stream.weights(kept).double())
        assert float(full) == pytest.approx(float(part))
        kept_total += kept.numel()
    assert 0.3 < kept_total / 200 < 0.7  # beta = 1 keeps about half


def test_uniform_keeps_every_sample_with_weight_one():
    stream = hm.HardStream(samples(), 16, policy="uniform")
    for ids, batch in stream:
        stream.update(ids, torch.rand(ids.numel()))
        assert torch.equal(stream.weights(ids), torch.ones(ids.numel()))
        kept, _ = stream.select(ids, batch)
        assert torch.equal(kept, ids)


def test_two_workers_read_every_sample_once_as_two_shards():
    data = samples(103)
    stream = hm.HardStream(data, 4, policy="uniform", num_workers=2)
    seen = {}
    for ids, (x, _) in torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2):
        for i, row in zip(ids.tolist(), x):
            seen[i] = row
    assert sorted(seen) == list(range(103))  # one epoch, two shards: id = position * 2 + shard = source position
    assert all(torch.equal(seen[i], data[i][0]) for i in seen)
