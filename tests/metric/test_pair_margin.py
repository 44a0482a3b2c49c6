"""PairMarginMiner against a double loop, and against PML."""

import pytest

from hardmine.metric import CosineSimilarity, EuclideanDistance, PairMarginMiner


def brute_force(d, pos, neg, pos_threshold, neg_threshold):
    rows, cols = range(len(d)), range(len(d[0]))
    positives = sorted((a, p) for a in rows for p in cols if pos[a][p] and d[a][p] > pos_threshold)
    negatives = sorted((a, n) for a in rows for n in cols if neg[a][n] and d[a][n] < neg_threshold)
    return positives, negatives


@pytest.mark.parametrize("distance,margins", [(EuclideanDistance(), (0.8, 1.2)), (CosineSimilarity(), (0.3, 0.1))],
                         ids=["euclidean", "cosine"])
def test_matches_brute_force(ref, batches, distance, margins):
    sign = -1 if distance.is_similarity else 1  # similarities: keep s(a,p) < pos_margin, s(a,n) > neg_margin
    for x, y in batches:
        pos, neg = ref.relations(y.tolist())
        want = brute_force(ref.dissimilarity(distance, x), pos, neg, sign * margins[0], sign * margins[1])
        assert ref.pair_sets(PairMarginMiner(*margins, distance=distance)(x, y)) == want


def test_reference_set_without_positives(ref, tie_data):
    x, y = tie_data
    q, qy = x[:8], y[:8].clone()
    qy[0] = 50  # no positive in the reference, negatives still mined
    pos, neg = ref.relations(qy.tolist(), y.tolist())
    want = brute_force(ref.dissimilarity(EuclideanDistance(), q, x), pos, neg, 0.5, 1.2)
    got = ref.pair_sets(PairMarginMiner(0.5, 1.2, max_block_bytes=1)(q, qy, x, y))
    assert got == want and any(a == 0 for a, _ in got[1])


def test_agrees_with_pml(ref, random_data):
    miners = pytest.importorskip("pytorch_metric_learning.miners")
    x, y = random_data
    assert ref.pair_sets(PairMarginMiner(0.9, 1.3)(x, y)) == ref.pair_sets(miners.PairMarginMiner(0.9, 1.3)(x, y))
