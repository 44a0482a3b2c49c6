"""BatchHardMiner and EasyPositiveHardNegativeMiner against a loop over anchors."""

import pytest
import torch

from hardmine.metric import (
    BatchHardMiner,
    CosineSimilarity,
    DotProductSimilarity,
    EasyPositiveHardNegativeMiner,
    EuclideanDistance,
    SquaredEuclideanDistance,
)

DISTANCES = [EuclideanDistance(), EuclideanDistance(normalize=False), SquaredEuclideanDistance(), CosineSimilarity(),
             DotProductSimilarity()]


def brute_force(d, pos, neg, hardest_positive):
    """One triplet per anchor: extreme positive, closest negative; ties to the smallest index."""
    out = []
    for a in range(len(d)):
        ps = [j for j in range(len(d[a])) if pos[a][j]]
        ns = [j for j in range(len(d[a])) if neg[a][j]]
        if not ps or not ns:
            continue
        key = (lambda j: (-d[a][j], j)) if hardest_positive else (lambda j: (d[a][j], j))
        out.append((a, min(ps, key=key), min(ns, key=lambda j: (d[a][j], j))))
    return out


@pytest.mark.parametrize("distance", DISTANCES, ids=repr)
@pytest.mark.parametrize("cls,hardest", [(BatchHardMiner, True), (EasyPositiveHardNegativeMiner, False)])
def test_matches_brute_force(ref, batches, distance, cls, hardest):
    for x, y in batches:
        got = cls(distance=distance)(x, y)
        pos, neg = ref.relations(y.tolist())
        assert ref.as_set(got) == brute_force(ref.dissimilarity(distance, x), pos, neg, hardest)


@pytest.mark.parametrize("cls,hardest", [(BatchHardMiner, True), (EasyPositiveHardNegativeMiner, False)])
def test_reference_set_and_blocks(ref, tie_data, cls, hardest):
    x, y = tie_data
    q, qy = x[:9], y[:9]
    pos, neg = ref.relations(qy.tolist(), y.tolist())
    want = brute_force(ref.dissimilarity(EuclideanDistance(), q, x), pos, neg, hardest)
    assert ref.as_set(cls()(q, qy, x, y)) == want
    assert ref.as_set(cls(max_block_bytes=1)(q, qy, x, y)) == want


def test_ties_go_to_smallest_index():
    x = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [-1, 0], [1, 0], [1, 0]])
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    a, p, n = BatchHardMiner()(x, y)
    assert (a[0], p[0], n[0]) == (0, 2, 4)
    a, p, n = EasyPositiveHardNegativeMiner()(x, y)
    assert (a[0], p[0], n[0]) == (0, 1, 4)


def test_callable_positive_mask_multi_label(ref):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(20, 5, generator=g)
    tags = torch.rand(20, 4, generator=g) < 0.3
    share = lambda a, b: (a.float() @ b.float().T) > 0  # noqa: E731
    got = BatchHardMiner(positive_mask=share)(x, tags)
    pos, neg = ref.relations(tags.tolist(), mask=share(tags, tags).tolist())
    assert ref.as_set(got) == brute_force(ref.dissimilarity(EuclideanDistance(), x), pos, neg, True)


def test_agrees_with_pml(random_data):
    miners = pytest.importorskip("pytorch_metric_learning.miners")
    x, y = random_data
    for got, want in zip(BatchHardMiner()(x, y), miners.BatchHardMiner()(x, y)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("cls,hardest", [(BatchHardMiner, True), (EasyPositiveHardNegativeMiner, False)])
def test_blocked_label_fold_matches_brute_force(ref, batches, cls, hardest):
    """A budget below one [B, B] block sends a batch mined against itself through the triangle of folded blocks
    (rows and columns of 15); the result is the one-block result and the loop's."""
    for x, y in batches:
        pos, neg = ref.relations(y.tolist())
        want = brute_force(ref.dissimilarity(EuclideanDistance(), x), pos, neg, hardest)
        blocked, whole = cls(max_block_bytes=1000)(x, y), cls()(x, y)
        assert ref.as_set(blocked) == want
        assert all(torch.equal(u, v) for u, v in zip(blocked, whole))


@pytest.mark.parametrize("cls,hardest", [(BatchHardMiner, True), (EasyPositiveHardNegativeMiner, False)])
@pytest.mark.parametrize("tied", [False, True])
def test_many_classes_in_one_block_match_brute_force(ref, cls, hardest, tied):
    """More classes than the folded path takes (40 > 32) still go through the one-block path: pairs and
    triples of rows per class, one single-sample class; with `tied`, rows drawn from 6 vectors (exact ties)."""
    g = torch.Generator().manual_seed(7)
    y = torch.cat([torch.arange(40).repeat_interleave(2), torch.arange(0, 40, 3), torch.tensor([99])])
    y = y[torch.randperm(len(y), generator=g)]
    if tied:
        x = torch.eye(6)[torch.randint(0, 6, (len(y),), generator=g)]
    else:
        x = torch.randn(len(y), 5, generator=g)
    pos, neg = ref.relations(y.tolist())
    want = brute_force(ref.dissimilarity(EuclideanDistance(), x), pos, neg, hardest)
    assert ref.as_set(cls()(x, y)) == want
