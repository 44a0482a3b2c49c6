import numpy as np
import pytest
import torch

from hardmine.retrieval import mine_hard_negatives


@pytest.fixture
def qc():
    rng = np.random.default_rng(0)
    return rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((20, 8)).astype(np.float32)


def mine(q, c, pos=None, **kw):
    return mine_hard_negatives(q, c, [[0]] * len(q) if pos is None else pos, progress=False, **kw)


def test_dimension_mismatch(qc):
    q, c = qc
    with pytest.raises(ValueError, match="query_emb has dimension 8 but corpus_emb has 6"):
        mine(q, c[:, :6])


@pytest.mark.parametrize("which", ["query_emb", "corpus_emb"])
def test_nan_embeddings_name_the_row(qc, which):
    q, c = qc
    bad = (q if which == "query_emb" else c).copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match=f"{which} has a non-finite value .* in row 2"):
        mine(bad, c) if which == "query_emb" else mine(q, bad)


def test_positive_out_of_range_names_query_and_id(qc):
    q, c = qc
    with pytest.raises(ValueError, match=r"positives\[1\] contains id 20, out of range \[0, 20\)"):
        mine(q, c, [[0], [3, 20], [1], [2]])
    with pytest.raises(ValueError, match=r"exclude\[0\] contains id -4"):
        mine(q, c, exclude=[[-4], [], [], []])


def test_empty_corpus_and_wrong_dtypes(qc):
    q, c = qc
    with pytest.raises(ValueError, match=r"corpus_emb is empty: shape \(0, 8\)"):
        mine(q, c[:0])
    with pytest.raises(TypeError, match="corpus_emb must hold float32 or float16 embeddings, got dtype int64"):
        mine(q, c.astype(np.int64))
    with pytest.raises(TypeError, match="query_emb must hold float32 or float16 embeddings, got torch dtype"):
        mine(torch.from_numpy(q).to(torch.bfloat16), c)
    with pytest.raises(TypeError, match=r"positives\[0\] must be an int or a 1-D list of ints"):
        mine(q, c, [[0.5], [1], [1], [1]])
    with pytest.raises(ValueError, match="positives has 3 entries but there are 4 queries"):
        mine(q, c, [[0], [1], [2]])


def test_zero_norm_rows_under_cosine(qc):
    q, c = qc
    c = c.copy()
    c[5] = 0
    with pytest.raises(ValueError, match="corpus_emb row 5 has zero norm"):
        mine(q, c)
    assert mine(q, c, metric="dot").indices.shape == (4, 5)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_negatives": 0}, "num_negatives must be >= 1, got 0"),
    ({"range_min": 5, "range_max": 5}, "range_max must be > range_min = 5, got 5"),
    ({"num_negatives": 6, "range_max": 5}, "num_negatives = 6 cannot fit the rank window"),
    ({"relative_margin": 1.5}, r"relative_margin must be in \[0.0, 1.0\], got 1.5"),
    ({"absolute_margin": float("nan")}, "absolute_margin must be in"),
    ({"min_score": 0.5, "max_score": 0.1}, "min_score = 0.5 is above max_score = 0.1"),
    ({"sampling": "hardest"}, "sampling must be one of"),
    ({"metric": "l2"}, "metric must be one of"),
    ({"index": "annoy"}, r"index must be one of \['exact', 'hnsw', 'ivf'\] or a SearchBackend"),
    ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
])
def test_bad_parameters(qc, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mine(*qc, **kwargs)


def test_margin_needs_a_positive_per_query(qc):
    q, c = qc
    with pytest.raises(ValueError, match=r"positives\[2\] is empty: a margin needs"):
        mine(q, c, [[0], [1], [], [3]], absolute_margin=0.1)
    assert mine(q, c, [[0], [1], [], [3]]).found[2] == 5


def test_bool_seed_is_refused(qc):
    with pytest.raises(TypeError, match="seed must be"):
        mine(*qc, seed=True)
