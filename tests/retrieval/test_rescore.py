import hashlib

import numpy as np
import pytest
import torch
from datasets import Dataset
from sentence_transformers.util import mine_hard_negatives as st_mine
from textmodel import TrigramModel, pair_rows

from hardmine.retrieval import mine_from_dataset, mine_hard_negatives


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ranking_and_filters_use_rescored_values(data):
    q, c, pos = data
    s = unit(q).astype(np.float64) @ unit(c).T.astype(np.float64)
    flip = np.random.default_rng(3).standard_normal(s.shape)  # a scorer unrelated to the embeddings

    def rescore(qi, ci):
        assert qi.dtype == np.int64 and ci.dtype == np.int64
        return flip[qi, ci]

    got = mine_hard_negatives(q, c, pos, num_negatives=3, range_max=20, relative_margin=0.0, rescore=rescore,
                              progress=False)
    plain_window = 20 + max(len(p) for p in pos)
    for i in range(len(q)):
        pool = [j for j in np.argsort(-s[i], kind="stable")[:plain_window] if j not in pos[i]]
        p = flip[i, pos[i]].min()
        pool = sorted(pool, key=lambda j: -flip[i, j])[:20]
        want = [j for j in pool if flip[i, j] <= p - abs(p) * 0.0][:3]
        assert got.indices[i][got.indices[i] >= 0].tolist() == want
        np.testing.assert_allclose(got.positive_scores[i], p, rtol=1e-6)
    assert got.summary()["rescored_pairs"] > 0


def test_summary_counts_what_rescoring_removed(data):
    q, c, _ = data
    pos = np.argmax(unit(q) @ unit(c).T, axis=1)  # the nearest row is the positive: most candidates pass a margin
    plain = mine_hard_negatives(q, c, pos, num_negatives=3, relative_margin=0.05, progress=False)
    flagged = {(i, int(j)) for i, row in enumerate(plain.indices) for j in row[:1] if j >= 0}
    s = unit(q) @ unit(c).T

    def rescore(qi, ci):  # the rescorer says the first mined negative of each query is in fact a positive
        return np.array([10.0 if (a, b) in flagged else s[a, b] for a, b in zip(qi.tolist(), ci.tolist())])

    got = mine_hard_negatives(q, c, pos, num_negatives=3, relative_margin=0.05, rescore=rescore, progress=False)
    assert len(flagged) == len(q)
    assert got.summary()["rescore_removed"] == len(flagged)
    assert not any((i, int(j)) in flagged for i, row in enumerate(got.indices) for j in row)
    assert got.rescore_removed.tolist() == [1] * len(q)


@pytest.mark.parametrize("bad, match", [
    (lambda qi, ci: np.zeros(len(qi) + 1), r"shape \["),
    (lambda qi, ci: np.full(len(qi), np.nan), "non-finite"),
    (lambda qi, ci: np.array(["x"] * len(qi)), "numbers"),
    ("not callable", "rescore must be callable"),
])
def test_bad_rescorer_named(data, bad, match):
    q, c, pos = data
    with pytest.raises((ValueError, TypeError), match=match):
        mine_hard_negatives(q, c, pos, num_negatives=2, rescore=bad, progress=False)


def _unit_hash(text):  # a tie-breaker in [0, 1), so that no two pairs score the same
    return int(hashlib.md5(text.encode()).hexdigest()[:12], 16) / 16**12


class FakeCrossEncoder:
    """Scores a pair by the number of shared characters (a scorer the trigram model does not reproduce)."""

    def __init__(self):
        self.pairs = 0

    def predict(self, pairs, batch_size=32, convert_to_tensor=False, show_progress_bar=False, pool=None, **kw):
        self.pairs += len(pairs)
        out = [len(set(a) & set(b)) / (1 + len(set(b))) + 1e-3 * _unit_hash(a + "|" + b) for a, b in pairs]
        return torch.tensor(out) if convert_to_tensor else np.array(out)


@pytest.mark.parametrize("filters", [dict(relative_margin=0.02), dict()])  # ST >= 6.3 re-scores without a filter
def test_cross_encoder_matches_sentence_transformers(filters):
    anchors, positives, corpus = pair_rows()
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    kw = dict(corpus=corpus, num_negatives=3, output_format="n-tuple", verbose=False, **filters)
    ce = FakeCrossEncoder()
    ours = mine_from_dataset(ds, TrigramModel(), cross_encoder=ce, **kw)
    theirs = st_mine(ds, TrigramModel(), cross_encoder=FakeCrossEncoder(), **kw)
    plain = mine_from_dataset(ds, TrigramModel(), **kw)
    assert ce.pairs > 0
    assert ours.to_list() == theirs.to_list()
    assert ours.to_list() != plain.to_list()


def test_callable_cross_encoder_over_text_ids():
    anchors, positives, corpus = pair_rows()
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    seen = []

    def rescore(qi, ci):
        seen.append(len(qi))
        return -np.asarray(ci, dtype=np.float64)

    out, got = mine_from_dataset(ds, TrigramModel(), corpus=corpus, cross_encoder=rescore, num_negatives=2,
                                 verbose=False, output_format="n-tuple", return_mined=True)
    assert seen and len(out) > 0
    assert "rescore_removed" in got.mined.summary()


def test_bad_cross_encoder_named_in_mine_from_dataset():
    anchors, positives, corpus = pair_rows()
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    with pytest.raises(ValueError, match="cross_encoder returned a non-finite score"):
        mine_from_dataset(ds, TrigramModel(), corpus=corpus, verbose=False,
                          cross_encoder=lambda q, c: np.full(len(q), np.nan))
    with pytest.raises(TypeError, match="cross_encoder must be a callable"):
        mine_from_dataset(ds, TrigramModel(), corpus=corpus, verbose=False, cross_encoder="ce")
