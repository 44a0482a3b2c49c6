"""Distances against their textbook formulas, computed entry by entry."""

import math

import pytest
import torch

from hardmine.metric import (
    DISTANCES,
    CosineSimilarity,
    DotProductSimilarity,
    EuclideanDistance,
    SquaredEuclideanDistance,
)


def unit(v):
    n = math.sqrt(sum(t * t for t in v))
    return [t / n for t in v]


def formula(name, normalize, u, v):
    if normalize:
        u, v = unit(u), unit(v)
    dot = sum(a * b for a, b in zip(u, v))
    sq = sum((a - b) ** 2 for a, b in zip(u, v))
    return {"euclidean": math.sqrt(sq), "squared_euclidean": sq, "cosine": dot, "dot": dot}[name]


@pytest.mark.parametrize("distance,name,normalize", [
    (EuclideanDistance(), "euclidean", True), (EuclideanDistance(normalize=False), "euclidean", False),
    (SquaredEuclideanDistance(), "squared_euclidean", True),
    (SquaredEuclideanDistance(normalize=False), "squared_euclidean", False),
    (CosineSimilarity(), "cosine", True), (DotProductSimilarity(), "dot", False),
    (DotProductSimilarity(normalize=True), "dot", True)], ids=repr)
def test_pairwise_matches_formula(distance, name, normalize):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(9, 5, generator=g, dtype=torch.float64)
    got = distance.pairwise(x, y)
    assert got.shape == (7, 9)
    want = torch.tensor([[formula(name, normalize, u, v) for v in y.tolist()] for u in x.tolist()])
    assert torch.allclose(got, want.double(), atol=1e-9)
    want_self = torch.tensor([[formula(name, normalize, u, v) for v in x.tolist()] for u in x.tolist()])
    assert torch.allclose(distance.pairwise(x), want_self.double(), atol=1e-6)
    assert distance.is_similarity == (name in ("cosine", "dot"))


def test_blocks_cover_the_matrix():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 4, generator=g), torch.randn(30, 4, generator=g)
    distance = EuclideanDistance()
    blocks = list(distance.pairwise_blocks(x, y, max_bytes=30 * 4 * 8))
    assert [start for start, _ in blocks] == list(range(0, 50, 8))
    assert torch.allclose(torch.cat([b for _, b in blocks]), distance.pairwise(x, y), atol=1e-6)
    assert torch.allclose(distance.pairwise(x, y, max_bytes=1), distance.pairwise(x, y), atol=1e-6)


def test_euclidean_is_never_nan_and_zero_on_duplicates():
    x = torch.tensor([[3.0, 4.0], [3.0, 4.0], [-3.0, -4.0]])
    d = EuclideanDistance(normalize=False).pairwise(x)
    assert torch.isfinite(d).all() and d[0, 1] == 0 and d[0, 2] == 10


def test_registry_and_arguments():
    assert set(DISTANCES) == {"euclidean", "squared_euclidean", "cosine", "dot"}
    assert all(isinstance(cls(), DISTANCES[name]) for name, cls in DISTANCES.items())
    with pytest.raises(TypeError, match="normalize"):
        EuclideanDistance(normalize=1)
    with pytest.raises(ValueError, match="max_bytes"):
        EuclideanDistance().pairwise(torch.ones(2, 2), max_bytes=0)
