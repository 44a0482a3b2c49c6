import numpy as np
import pytest
import torch

from hardmine.retrieval import ExactSearch, HNSWSearch, IVFSearch, mine_hard_negatives
from hardmine.retrieval.backends import exact as exact_module


def ids_of(result):
    return [row[row >= 0].tolist() for row in result.indices]


@pytest.mark.parametrize("metric", ["cosine", "dot"])
@pytest.mark.parametrize("engine", ["faiss", "torch"])
def test_exact_matches_reference(data, reference, metric, engine):
    q, c, pos = data
    got = mine_hard_negatives(q, c, pos, num_negatives=7, metric=metric, progress=False, batch_size=9,
                              index=ExactSearch(engine=engine, corpus_batch_size=37))
    ref = reference(q, c, pos, 7, metric=metric)
    assert ids_of(got) == [r[0] for r in ref]
    np.testing.assert_allclose(got.positive_scores, [r[2] for r in ref], rtol=1e-5, atol=1e-6)
    scores = q @ c.T if metric == "dot" else (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        c / np.linalg.norm(c, axis=1, keepdims=True)).T
    np.testing.assert_allclose(got.scores, np.take_along_axis(scores, got.indices, axis=1), rtol=1e-5, atol=1e-6)


def test_range_window_and_torch_float16_inputs(data, reference):
    q, c, pos = data
    got = mine_hard_negatives(torch.from_numpy(q).half(), torch.from_numpy(c).half(), pos, num_negatives=4,
                              range_min=3, range_max=20, progress=False)
    ref = reference(q.astype(np.float16), c.astype(np.float16), pos, 4, range_min=3, range_max=20)
    assert ids_of(got) == [r[0] for r in ref]
    assert (got.candidates == 17).all()


@pytest.mark.parametrize("sampling", ["top", "random"])
def test_positives_and_excluded_never_returned(data, sampling):
    q, c, pos = data
    rng = np.random.default_rng(1)
    exclude = [rng.choice(300, size=5, replace=False).tolist() for _ in range(40)]
    # positives chosen as each query's nearest rows: they would be the top candidates if not removed
    near = np.argsort(-(q @ c.T), axis=1)[:, :6]
    got = mine_hard_negatives(q, c, near.tolist(), num_negatives=30, exclude=exclude, sampling=sampling,
                              metric="dot", progress=False)
    for i, row in enumerate(got.indices):
        assert not set(row.tolist()) & (set(near[i].tolist()) | set(exclude[i]))
        assert (row >= 0).all() and len(set(row.tolist())) == 30


def test_multi_positive_queries_still_get_their_negatives():
    rng = np.random.default_rng(2)
    q, c = rng.standard_normal((5, 8)).astype(np.float32), rng.standard_normal((500, 8)).astype(np.float32)
    near = np.argsort(-(q @ c.T), axis=1)[:, :100]  # 100 positives, all ranked above every negative
    got = mine_hard_negatives(q, c, near, num_negatives=5, range_max=5, metric="dot", progress=False)
    expected = np.argsort(-(q @ c.T), axis=1)[:, 100:105]
    np.testing.assert_array_equal(got.indices, expected)


@pytest.mark.parametrize("kwargs", [
    {"max_score": 0.3}, {"min_score": -0.1}, {"absolute_margin": 0.05}, {"relative_margin": 0.1},
    {"max_score": 0.5, "min_score": 0.0, "absolute_margin": 0.0, "relative_margin": 0.05},
])
def test_each_filter_drops_exactly_what_the_reference_drops(data, reference, kwargs):
    q, c, pos = data
    got = mine_hard_negatives(q, c, pos, num_negatives=5, range_max=60, progress=False, **kwargs)
    ref = reference(q, c, pos, 5, range_max=60, **kwargs)
    assert ids_of(got) == [r[0] for r in ref]
    for name in got.dropped:
        assert got.dropped[name].tolist() == [r[1][name] for r in ref], name
    kept = got.candidates - sum(got.dropped.values())
    assert (kept >= got.found).all() and (got.candidates == 60).all()


def test_relative_margin_is_right_for_negative_positive_scores():
    # dot metric on 1-D-like data: score = first coordinate exactly
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    values = [-0.5, -0.55, -0.58, -0.62, -0.7, 0.3]
    c = np.array([[v, 0.0] for v in values], dtype=np.float32)
    got = mine_hard_negatives(q, c, [[0]], num_negatives=5, relative_margin=0.2, metric="dot", progress=False)
    # threshold p - |p| * r = -0.5 - 0.1 = -0.6: 0.3, -0.55 and -0.58 are too close to the positive
    assert got.indices[0].tolist() == [3, 4, -1, -1, -1]
    assert got.dropped["relative_margin"].tolist() == [3]
    assert got.positive_scores[0] == pytest.approx(-0.5)


def test_absolute_margin_uses_the_lowest_positive():
    q = np.array([[1.0, 0.0]], dtype=np.float32)
    c = np.array([[v, 0.0] for v in [0.9, 0.2, 0.8, 0.15, 0.05, -0.3]], dtype=np.float32)
    got = mine_hard_negatives(q, c, [[0, 1]], num_negatives=4, absolute_margin=0.1, metric="dot", progress=False)
    assert got.positive_scores[0] == pytest.approx(0.2)
    assert got.indices[0].tolist() == [4, 5, -1, -1]  # 0.8 and 0.15 are above 0.2 - 0.1


def test_fewer_than_asked_is_padded_not_an_error():
    rng = np.random.default_rng(3)
    q, c = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    got = mine_hard_negatives(q, c, [[0], [1, 2], [0, 1, 2, 3, 4, 5]], num_negatives=5, progress=False)
    assert got.found.tolist() == [5, 4, 0]
    assert (got.indices[1, 4] == -1) and np.isnan(got.scores[1, 4]) and (got.indices[2] == -1).all()
    assert got.summary()["queries_short"] == 2
    assert any("fewer than 5" in note for note in got.notes())


def test_random_sampling_is_seeded_and_independent_of_blocking(data):
    q, c, pos = data
    kw = dict(num_negatives=5, range_max=40, sampling="random", progress=False)
    a = mine_hard_negatives(q, c, pos, seed=7, batch_size=4, **kw)
    b = mine_hard_negatives(q, c, pos, seed=7, batch_size=64, index=ExactSearch(corpus_batch_size=50), **kw)
    other = mine_hard_negatives(q, c, pos, seed=8, **kw)
    window = mine_hard_negatives(q, c, pos, num_negatives=40, range_max=40, progress=False)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert not np.array_equal(a.indices, other.indices)
    for row, allowed in zip(a.indices, window.indices):
        assert set(row.tolist()) <= set(allowed.tolist())
    assert (np.diff(a.scores, axis=1) <= 0).all()


def test_search_blocks_are_bounded(data, monkeypatch):
    q, c, pos = data
    shapes = []
    original = exact_module._faiss_knn

    def spy(queries, chunk, k):
        shapes.append((len(queries), len(chunk)))
        return original(queries, chunk, k)

    monkeypatch.setattr(exact_module, "_faiss_knn", spy)
    mine_hard_negatives(q, c, pos, batch_size=8, index=ExactSearch(corpus_batch_size=64), progress=False)
    assert max(s[0] for s in shapes) <= 8 and max(s[1] for s in shapes) <= 64
    assert len(shapes) == 5 * 5


@pytest.mark.parametrize("backend", [IVFSearch(nlist=4, nprobe=4), HNSWSearch(m=8, ef_search=400)])
def test_approximate_backends_state_their_recall(data, reference, backend):
    q, c, pos = data
    got = mine_hard_negatives(q, c, pos, num_negatives=5, index=backend, progress=False)
    assert got.search_recall == pytest.approx(1.0) and got.recall_k >= 50
    assert ids_of(got) == [r[0] for r in reference(q, c, pos, 5)]
    assert backend.build_seconds_ > 0


def test_ivf_with_few_cells_probed_reports_lower_recall():
    rng = np.random.default_rng(4)
    q, c = rng.standard_normal((64, 32)).astype(np.float32), rng.standard_normal((4000, 32)).astype(np.float32)
    got = mine_hard_negatives(q, c, [[0]] * 64, num_negatives=5, index=IVFSearch(nlist=64, nprobe=1),
                              progress=False)
    assert got.search_recall < 0.5


def test_survivors_pool_extra_sets_the_retrieval_depth(data):
    q, c, pos = data
    s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T
    kw = dict(num_negatives=4, range_max=6, max_score=0.55, range_rule="survivors", progress=False)
    found = []
    for extra in (0, 2, 9):
        got = mine_hard_negatives(q, c, pos, pool_extra=extra, **kw)
        for i in range(len(q)):  # the top range_max + extra, then positives and max_score dropped, first 4 kept
            pool = [j for j in np.argsort(-s[i], kind="stable")[:6 + extra] if j not in pos[i] and s[i, j] <= 0.55]
            assert ids_of(got)[i] == pool[:4]
        found.append(int((got.indices >= 0).sum()))
    assert found[0] < found[1] < found[2]
    with pytest.raises(ValueError, match="pool_extra only applies"):
        mine_hard_negatives(q, c, pos, pool_extra=1, progress=False)
