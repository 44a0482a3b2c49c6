"""A brute-force numpy reference for mining: full float64 score matrix, one query at a time."""

from __future__ import annotations

import numpy as np
import pytest


def brute_force(q, c, positives, n, range_min=0, range_max=None, max_score=None, min_score=None,
                absolute_margin=None, relative_margin=None, exclude=None, metric="cosine"):
    """Per query: (negative ids, dropped counts by filter, lowest positive score)."""
    q, c = np.asarray(q, dtype=np.float64), np.asarray(c, dtype=np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        c = c / np.linalg.norm(c, axis=1, keepdims=True)
    scores = q @ c.T
    range_max = range_min + 10 * n if range_max is None else range_max
    out = []
    for i in range(len(q)):
        pos = np.atleast_1d(np.asarray(positives[i], dtype=np.int64))
        removed = set(pos.tolist()) | (set(np.atleast_1d(exclude[i]).tolist()) if exclude is not None else set())
        order = [j for j in np.lexsort((np.arange(len(c)), -scores[i])) if j not in removed]
        window = order[range_min:range_max]
        p = scores[i, pos].min() if pos.size else np.nan
        dropped = {}
        tests = {"max_score": lambda s: max_score is not None and s > max_score,
                 "min_score": lambda s: min_score is not None and s < min_score,
                 "absolute_margin": lambda s: absolute_margin is not None and s > p - absolute_margin,
                 "relative_margin": lambda s: relative_margin is not None and s > p - abs(p) * relative_margin}
        alive = list(window)
        for name, fails in tests.items():
            dropped[name] = sum(fails(scores[i, j]) for j in alive)
            alive = [j for j in alive if not fails(scores[i, j])]
        out.append((alive[:n], dropped, p))
    return out


@pytest.fixture
def reference():
    return brute_force


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((40, 12)).astype(np.float32)
    c = rng.standard_normal((300, 12)).astype(np.float32)
    positives = [rng.choice(300, size=1 + i % 4, replace=False).tolist() for i in range(40)]
    return q, c, positives
