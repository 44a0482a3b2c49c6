"""TripletMarginMiner (four types) and BatchAllMiner against a triple loop; max_triplets sampling."""

import numpy as np
import pytest
import torch

from hardmine.metric import (
    BatchAllMiner,
    CosineSimilarity,
    EuclideanDistance,
    SquaredEuclideanDistance,
    TripletMarginMiner,
)


def keep(kind, d_ap, d_an, margin):
    threshold = float(np.float32(d_ap) + np.float32(margin))
    if kind == "all":
        return d_an <= threshold
    if kind == "hard":
        return d_an <= threshold and d_an <= d_ap
    if kind == "semihard":
        return d_an <= threshold and d_an > d_ap
    if kind == "easy":
        return d_an > threshold
    return d_an < threshold  # batch-all: positive loss


def brute_force(d, pos, neg, kind, margin):
    return sorted((a, p, n) for a in range(len(d)) for p in range(len(d[a])) for n in range(len(d[a]))
                  if pos[a][p] and neg[a][n] and keep(kind, d[a][p], d[a][n], margin))


@pytest.mark.parametrize("distance", [EuclideanDistance(), CosineSimilarity()], ids=repr)
@pytest.mark.parametrize("kind", ["all", "hard", "semihard", "easy", "batch_all"])
def test_matches_brute_force(ref, batches, distance, kind):
    for x, y in batches:
        pos, neg = ref.relations(y.tolist())
        d = ref.dissimilarity(distance, x)
        for margin in (0.1, 0.5):
            if kind == "batch_all":
                miner = BatchAllMiner(margin, distance=distance)
            else:
                miner = TripletMarginMiner(margin, kind, distance=distance)
            assert ref.as_set(miner(x, y)) == brute_force(d, pos, neg, kind, margin)


def test_exact_boundaries_with_integer_distances(ref):
    # squared distances of integer vectors are integers, so d_an == d_ap + margin happens exactly
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(-1, 2, (14, 3), generator=g).float(), torch.randint(0, 3, (14,), generator=g)
    distance = SquaredEuclideanDistance(normalize=False)
    pos, neg = ref.relations(y.tolist())
    d = ref.dissimilarity(distance, x)
    for kind in ("all", "hard", "semihard", "easy"):
        assert ref.as_set(TripletMarginMiner(1.0, kind, distance=distance)(x, y)) == brute_force(d, pos, neg, kind, 1.0)
    assert ref.as_set(BatchAllMiner(1.0, distance=distance)(x, y)) == brute_force(d, pos, neg, "batch_all", 1.0)


def test_reference_set_in_blocks(ref, tie_data):
    x, y = tie_data
    pos, neg = ref.relations(y[:7].tolist(), y.tolist())
    want = brute_force(ref.dissimilarity(EuclideanDistance(), x[:7], x), pos, neg, "all", 0.3)
    for block_bytes in (1, 2**20):
        assert ref.as_set(TripletMarginMiner(0.3, max_block_bytes=block_bytes)(x[:7], y[:7], x, y)) == want


@pytest.mark.parametrize("kind", ["all", "hard", "semihard", "easy"])
def test_agrees_with_pml(ref, random_data, kind):
    miners = pytest.importorskip("pytorch_metric_learning.miners")
    x, y = random_data
    want = miners.TripletMarginMiner(0.2, type_of_triplets=kind)(x, y)
    assert ref.as_set(TripletMarginMiner(0.2, kind)(x, y)) == ref.as_set(want)


def test_max_triplets_samples_without_replacement(ref, random_data):
    x, y = random_data
    full = set(ref.as_set(TripletMarginMiner(0.5, max_block_bytes=2000)(x, y)))
    assert len(full) > 300
    first = ref.as_set(TripletMarginMiner(0.5, max_triplets=50, seed=3, max_block_bytes=2000)(x, y))
    assert len(first) == len(set(first)) == 50 and set(first) <= full
    assert first == ref.as_set(TripletMarginMiner(0.5, max_triplets=50, seed=3)(x, y))
    assert first != ref.as_set(TripletMarginMiner(0.5, max_triplets=50, seed=4)(x, y))
    assert set(ref.as_set(TripletMarginMiner(0.5, max_triplets=10**6, seed=0)(x, y))) == full


def test_max_triplets_is_uniform():
    x = torch.tensor([[0.0, 1], [0, 1.1], [1, 0], [1, 0.1], [1.1, 0], [0.9, 0]])
    y = torch.tensor([0, 0, 1, 1, 1, 1])
    miner = BatchAllMiner(margin=10.0, max_triplets=3, seed=torch.Generator().manual_seed(0))
    counts: dict = {}
    for _ in range(400):
        for t in zip(*(u.tolist() for u in miner(x, y))):
            counts[t] = counts.get(t, 0) + 1
    total = 2 * 4 + 4 * 3 * 2  # every triplet qualifies: 32
    assert len(counts) == total
    expected = 400 * 3 / total
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 70  # 31 degrees of freedom: p < 1e-4 of failing by chance


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="type_of_triplets"):
        TripletMarginMiner(type_of_triplets="semi-hard")
    with pytest.raises(ValueError, match="max_triplets"):
        TripletMarginMiner(max_triplets=0)
    with pytest.raises(TypeError, match="seed"):
        BatchAllMiner(seed="x")
