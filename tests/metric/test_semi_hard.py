"""SemiHardMiner against a loop over (anchor, positive) pairs following TF-Addons' semi-hard rule."""

import numpy as np
import pytest
import torch

from hardmine.metric import CosineSimilarity, EuclideanDistance, SemiHardMiner, SquaredEuclideanDistance


def brute_force(d, pos, neg, margin):
    out = []
    for a in range(len(d)):
        ns = [j for j in range(len(d[a])) if neg[a][j]]
        for p in (j for j in range(len(d[a])) if pos[a][j]):
            if not ns:
                continue
            farther = [n for n in ns if d[a][n] > d[a][p]]
            if farther:
                n = min(farther, key=lambda j: (d[a][j], j))
            else:
                n = min(ns, key=lambda j: (-d[a][j], j))
            if d[a][n] < float(np.float32(d[a][p]) + np.float32(margin)):
                out.append((a, p, n))
    return sorted(out)


@pytest.mark.parametrize("distance", [EuclideanDistance(), SquaredEuclideanDistance(normalize=False),
                                      CosineSimilarity()], ids=repr)
@pytest.mark.parametrize("margin", [0.0, 0.2, 1.0])
def test_matches_brute_force(ref, batches, distance, margin):
    for x, y in batches:
        pos, neg = ref.relations(y.tolist())
        want = brute_force(ref.dissimilarity(distance, x), pos, neg, margin)
        assert ref.as_set(SemiHardMiner(margin, distance=distance)(x, y)) == want


def test_reference_set_blocks_and_mask(ref, tie_data):
    x, y = tie_data
    mask = (y[:10, None] - y[None, :]).abs() <= 1
    pos, neg = ref.relations(y[:10].tolist(), y.tolist(), mask=mask.tolist())
    want = brute_force(ref.dissimilarity(EuclideanDistance(), x[:10], x), pos, neg, 0.5)
    for block_bytes in (1, 2**20):
        miner = SemiHardMiner(0.5, positive_mask=mask, max_block_bytes=block_bytes)
        assert ref.as_set(miner(x[:10], y[:10], x, y)) == want


def test_fallback_is_the_easiest_hard_negative():
    # anchor 0: positive 1 at distance 2; negatives 2, 3 closer (hard), none farther
    x = torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0.6, 0.8]])
    y = torch.tensor([0, 0, 1, 1])
    a, p, n = SemiHardMiner(0.2)(x, y)
    assert (a[0], p[0], n[0]) == (0, 1, 2)


def test_large_batch_in_small_blocks_agrees():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 16, generator=g), torch.randint(0, 8, (300,), generator=g)
    whole = SemiHardMiner()(x, y)
    blocked = SemiHardMiner(max_block_bytes=300 * 24 * 7)(x, y)
    assert all(torch.equal(u, v) for u, v in zip(whole, blocked))
