"""MultiSimilarityMiner against a loop over anchors, and against PML."""

import pytest

from hardmine.metric import CosineSimilarity, EuclideanDistance, MultiSimilarityMiner


def brute_force(d, pos, neg, epsilon):
    positives, negatives = [], []
    for a in range(len(d)):
        ps = [d[a][j] for j in range(len(d[a])) if pos[a][j]]
        ns = [d[a][j] for j in range(len(d[a])) if neg[a][j]]
        closest_negative = min(ns, default=float("inf"))
        farthest_positive = max(ps, default=float("-inf"))
        positives += [(a, j) for j in range(len(d[a])) if pos[a][j] and d[a][j] + epsilon > closest_negative]
        negatives += [(a, j) for j in range(len(d[a])) if neg[a][j] and d[a][j] - epsilon < farthest_positive]
    return sorted(positives), sorted(negatives)


@pytest.mark.parametrize("distance", [CosineSimilarity(), EuclideanDistance()], ids=repr)
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_matches_brute_force(ref, batches, distance, epsilon):
    for x, y in batches:
        pos, neg = ref.relations(y.tolist())
        want = brute_force(ref.dissimilarity(distance, x), pos, neg, epsilon)
        assert ref.pair_sets(MultiSimilarityMiner(epsilon, distance=distance)(x, y)) == want


def test_reference_set_in_blocks(ref, tie_data):
    x, y = tie_data
    pos, neg = ref.relations(y[:9].tolist(), y.tolist())
    want = brute_force(ref.dissimilarity(CosineSimilarity(), x[:9], x), pos, neg, 0.1)
    assert ref.pair_sets(MultiSimilarityMiner(max_block_bytes=1)(x[:9], y[:9], x, y)) == want


def test_agrees_with_pml(ref, random_data):
    miners = pytest.importorskip("pytorch_metric_learning.miners")
    x, y = random_data
    assert ref.pair_sets(MultiSimilarityMiner()(x, y)) == ref.pair_sets(miners.MultiSimilarityMiner()(x, y))
