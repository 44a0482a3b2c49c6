"""DistanceWeightedMiner: the weights against the formula, the sampling against the weights."""

import math

import pytest
import torch

from hardmine.metric import CosineSimilarity, DistanceWeightedMiner, EuclideanDistance
from hardmine.metric.distance_weighted import negative_weights


def test_weights_match_the_formula():
    d = torch.tensor([[0.2, 0.5, 0.9, 1.39, 1.4, 1.9, float("inf")]], dtype=torch.float64)
    got = negative_weights(d, dim=16, cutoff=0.5, nonzero_loss_cutoff=1.4)[0].tolist()
    log_w = [(2 - 16) * math.log(max(v, 0.5)) - (16 - 3) / 2 * math.log(1 - 0.25 * max(v, 0.5) ** 2)
             for v in (0.2, 0.5, 0.9, 1.39)]
    top = max(log_w)
    assert got[:4] == pytest.approx([math.exp(v - top) for v in log_w], rel=1e-9)
    assert got[4:] == [0.0, 0.0, 0.0]


def test_samples_follow_the_weights(ref):
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(8, 3, generator=g), dim=1)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    miner = DistanceWeightedMiner(cutoff=0.3, nonzero_loss_cutoff=2.0, seed=1)
    d = ref.dissimilarity(EuclideanDistance(), x)
    pos, neg = ref.relations(y.tolist())
    counts = torch.zeros(8, 8)
    rounds = 1500
    for _ in range(rounds):
        a, p, n = miner(x, y)
        assert all(pos[i][j] and neg[i][k] for i, j, k in zip(a.tolist(), p.tolist(), n.tolist()))
        assert sorted(zip(a.tolist(), p.tolist())) == [(i, j) for i in range(8) for j in range(8) if pos[i][j]]
        counts.index_put_((a, n), torch.ones(len(a)), accumulate=True)
    for i in range(8):
        w = [0.0 if not neg[i][j] or d[i][j] >= 2.0 else
             math.exp((2 - 3) * math.log(max(d[i][j], 0.3))) for j in range(8)]  # dim 3: the sphere term vanishes
        expected = [rounds * v / sum(w) for v in w]
        chi2 = sum((counts[i, j].item() - e) ** 2 / e for j, e in enumerate(expected) if e > 0)
        assert chi2 < 30  # 5 degrees of freedom
        assert all(counts[i, j] == 0 for j, e in enumerate(expected) if e == 0)


def test_seeded_and_skips_anchors_without_weight():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(30, 8, generator=g), torch.randint(0, 3, (30,), generator=g)
    first, again = DistanceWeightedMiner(seed=5)(x, y), DistanceWeightedMiner(seed=5)(x, y)
    assert all(torch.equal(u, v) for u, v in zip(first, again))
    generator = torch.Generator().manual_seed(5)
    assert all(torch.equal(u, v) for u, v in zip(first, DistanceWeightedMiner(seed=generator)(x, y)))
    a, _, _ = DistanceWeightedMiner(nonzero_loss_cutoff=1e-3, seed=0)(x, y)  # every negative beyond the cutoff
    assert a.numel() == 0


def test_needs_normalised_euclidean():
    with pytest.raises(ValueError, match="EuclideanDistance"):
        DistanceWeightedMiner(distance=CosineSimilarity())
    with pytest.raises(ValueError, match="EuclideanDistance"):
        DistanceWeightedMiner(distance=EuclideanDistance(normalize=False))
    with pytest.raises(ValueError, match="cutoff"):
        DistanceWeightedMiner(cutoff=0.0)
