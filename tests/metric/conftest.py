"""Batches for the metric tests and the plain facts every brute-force reference starts from."""

from __future__ import annotations

import itertools

import pytest
import torch


class Reference:
    """Plain, loop-based helpers for the brute-force references (no vectorised tricks)."""

    @staticmethod
    def dissimilarity(distance, x, y=None):
        """The distance's own matrix as nested lists, similarities negated (larger = farther)."""
        mat = distance.pairwise(x, y)
        if distance.is_similarity:
            mat = -mat
        return mat.tolist()

    @staticmethod
    def relations(labels, ref_labels=None, mask=None, exclude_self=None):
        """pos[i][j], neg[i][j] as Python bools: positives share a label (or mask[i][j]); self pairs are neither."""
        exclude_self = ref_labels is None if exclude_self is None else exclude_self
        ref_labels = labels if ref_labels is None else ref_labels
        rows, cols = len(labels), len(ref_labels)
        pos = [[False] * cols for _ in range(rows)]
        neg = [[False] * cols for _ in range(rows)]
        for i in range(rows):
            for j in range(cols):
                if exclude_self and i == j:
                    continue
                same = bool(mask[i][j]) if mask is not None else int(labels[i]) == int(ref_labels[j])
                pos[i][j], neg[i][j] = same, not same
        return pos, neg

    @staticmethod
    def as_set(indices):
        return sorted(zip(*(t.tolist() for t in indices)))

    @staticmethod
    def pair_sets(indices):
        return Reference.as_set(indices[:2]), Reference.as_set(indices[2:])


@pytest.fixture
def ref() -> type[Reference]:
    return Reference


def random_batch(seed: int, size: int = 24, dim: int = 6, classes: int = 4):
    """Gaussian embeddings, labels from `classes` classes plus one single-sample class (label 99)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(size, dim, generator=g)
    y = torch.randint(0, classes, (size,), generator=g)
    y[size // 2] = 99
    return x, y


def tie_batch(seed: int, size: int = 24, classes: int = 3):
    """Embeddings drawn from a few unit vectors with entries in {0, +-1/2, +-1}: every distance and similarity is
    computed exactly, and duplicated rows make many exact ties."""
    g = torch.Generator().manual_seed(seed)
    dim = 8
    pool = [torch.eye(dim)[k] * s for k in range(3) for s in (1.0, -1.0)]
    for ones in itertools.islice(itertools.combinations(range(dim), 4), 6):
        v = torch.zeros(dim)
        v[list(ones)] = 0.5
        pool.append(v)
    pool = torch.stack(pool)
    x = pool[torch.randint(0, len(pool), (size,), generator=g)]
    y = torch.randint(0, classes, (size,), generator=g)
    return x, y


@pytest.fixture
def batches():
    """Three Gaussian batches (with a single-sample class) and three batches full of exact ties."""
    return [random_batch(seed) for seed in range(3)] + [tie_batch(seed) for seed in range(3)]


@pytest.fixture
def tie_data():
    return tie_batch(0)


@pytest.fixture
def random_data():
    return random_batch(0)
