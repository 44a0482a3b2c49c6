"""PML interop: hardmine miners take PML distance objects, PML miners take converted hardmine distances, and
every miner counts what it returned as PML's miners do."""

import pytest
import torch
from test_base import build

from hardmine.metric import (
    MINERS,
    CosineSimilarity,
    DotProductSimilarity,
    EuclideanDistance,
    PairMarginMiner,
    SquaredEuclideanDistance,
    TripletMarginMiner,
)

pml_d = pytest.importorskip("pytorch_metric_learning.distances")
pml_m = pytest.importorskip("pytorch_metric_learning.miners")

PAIRS = [
    (lambda: pml_d.LpDistance(), EuclideanDistance(True)),
    (lambda: pml_d.LpDistance(normalize_embeddings=False), EuclideanDistance(False)),
    (lambda: pml_d.LpDistance(power=2), SquaredEuclideanDistance(True)),
    (lambda: pml_d.CosineSimilarity(), CosineSimilarity()),
    (lambda: pml_d.DotProductSimilarity(normalize_embeddings=False), DotProductSimilarity()),
]


def as_set(out):
    return set(zip(*(t.tolist() for t in out)))


@pytest.mark.parametrize("make, ours", PAIRS)
def test_pml_distances_accepted_and_equal(random_data, make, ours):
    x, y = random_data
    theirs = make()
    miner = TripletMarginMiner(0.2, "semihard", distance=theirs)
    assert type(miner.distance) is type(ours) and miner.distance.normalize == ours.normalize
    got = as_set(miner(x, y))
    assert got == as_set(TripletMarginMiner(0.2, "semihard", distance=ours)(x, y))
    assert got == as_set(pml_m.TripletMarginMiner(0.2, type_of_triplets="semihard", distance=make())(x, y))


@pytest.mark.parametrize("make, ours", PAIRS)
def test_converted_distances_drive_pml_miners(random_data, make, ours):
    x, y = random_data
    pml_miner = pml_m.PairMarginMiner(0.2, 0.8, distance=ours.to_pml())
    want = pml_m.PairMarginMiner(0.2, 0.8, distance=make())(x, y)
    assert [as_set(pml_miner(x, y)[i::2]) for i in (0, 1)] == [as_set(want[i::2]) for i in (0, 1)]


def test_unsupported_pml_distance_is_named():
    with pytest.raises(TypeError, match="LpDistance with p=2"):
        TripletMarginMiner(distance=pml_d.LpDistance(p=1))
    with pytest.raises(TypeError,
                       match="distance must be a hardmine.metric distance object or a pytorch-metric-learning one"):
        TripletMarginMiner(distance="cosine")


@pytest.mark.parametrize("name", sorted(MINERS))
def test_counters_after_every_call(name, random_data):
    x, y = random_data
    miner = build(name)
    assert (miner.num_pos_pairs, miner.num_neg_pairs, miner.num_triplets) == (0, 0, 0)
    out = miner(x, y)
    if miner.arity == 4:
        assert (miner.num_pos_pairs, miner.num_neg_pairs, miner.num_triplets) == (len(out[0]), len(out[2]), 0)
    else:
        a, p, n = out
        assert miner.num_triplets == len(a) > 0
        assert miner.num_pos_pairs == len(set(zip(a.tolist(), p.tolist())))
        assert miner.num_neg_pairs == len(set(zip(a.tolist(), n.tolist())))
    miner(x[:3], torch.arange(3))
    assert miner.num_triplets == 0 and miner.num_pos_pairs == 0


def test_counters_match_pml(random_data):
    x, y = random_data
    ours, theirs = PairMarginMiner(0.2, 0.8), pml_m.PairMarginMiner(0.2, 0.8)
    ours(x, y)
    theirs(x, y)
    assert (ours.num_pos_pairs, ours.num_neg_pairs) == (theirs.num_pos_pairs, theirs.num_neg_pairs)
    ours, theirs = TripletMarginMiner(0.2, "hard"), pml_m.TripletMarginMiner(0.2, type_of_triplets="hard")
    ours(x, y)
    theirs(x, y)
    assert ours.num_triplets == theirs.num_triplets
