import numpy as np
import pytest
from datasets import Dataset
from sentence_transformers.util import mine_hard_negatives as st_mine
from textmodel import TrigramModel, pair_rows

from hardmine.retrieval import (
    TextPairs,
    identical_texts,
    mine_from_dataset,
    mine_hard_negatives,
)

FORMATS = ["triplet", "n-tuple", "labeled-pair", "labeled-list"]


@pytest.fixture(scope="module")
def rows():
    anchors, positives, corpus = pair_rows()
    return Dataset.from_dict({"query": anchors, "answer": positives}), corpus


def rows_of(ds):
    return [tuple(tuple(v) if isinstance(v, list) else v for v in r.values()) for r in ds]


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("params", [dict(), dict(range_min=3, range_max=20),
                                    dict(relative_margin=0.05, num_negatives=4),
                                    dict(range_min=2, max_score=0.9, absolute_margin=0.02, range_max=25)])
def test_identical_to_sentence_transformers(rows, output_format, params):
    ds, corpus = rows
    model = TrigramModel()
    ours = mine_from_dataset(ds, model, corpus=corpus, output_format=output_format, verbose=False, **params)
    theirs = st_mine(ds, model, corpus=corpus, output_format=output_format, verbose=False, **params)
    assert ours.column_names == theirs.column_names
    assert len(ours) == len(theirs) > 0
    assert rows_of(ours) == rows_of(theirs)


def test_scores_match_sentence_transformers(rows):
    ds, corpus = rows
    model = TrigramModel()
    ours = mine_from_dataset(ds, model, corpus=corpus, output_format="n-tuple", output_scores=True, verbose=False)
    theirs = st_mine(ds, model, corpus=corpus, output_format="n-tuple", output_scores=True, verbose=False)
    np.testing.assert_allclose(np.array(ours["scores"]), np.array(theirs["scores"]), atol=1e-5)


def test_range_rules_differ_and_hardmine_rule_matches_embedding_api(rows):
    ds, corpus = rows
    model = TrigramModel()
    params = dict(range_min=2, range_max=12, relative_margin=0.1, num_negatives=3, verbose=False)
    st_rule, got = mine_from_dataset(ds, model, corpus=corpus, output_format="n-tuple", return_mined=True, **params)
    ours, got2 = mine_from_dataset(ds, model, corpus=corpus, output_format="n-tuple", range_rule="ranks",
                                   return_mined=True, **params)
    assert rows_of(st_rule) != rows_of(ours)
    t = got2.texts
    q, c = model.encode(t.queries, normalize_embeddings=True), model.encode(t.corpus, normalize_embeddings=True)
    direct = mine_hard_negatives(q, c, t.positives, num_negatives=3, range_min=2, range_max=12,
                                 relative_margin=0.1, progress=False)
    np.testing.assert_array_equal(direct.indices, got2.mined.indices)


def test_duplicate_texts_never_negatives_and_mapping_kept():
    anchors = ["a small cat", "a big dog", "a big dog"]
    positives = ["cat", "dog", "hound"]
    corpus = ["cat", "cat", "kitten", "dog", "puppy", "cat", "wolf", "hound", "fox"]
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    out, got = mine_from_dataset(ds, TrigramModel(), corpus=corpus, num_negatives=3, output_format="triplet",
                                 verbose=False, return_mined=True)
    for a, p, n in zip(out["anchor"], out["positive"], out["negative"]):
        assert n != p
        assert not (a == "a big dog" and n in ("dog", "hound"))
    t = got.texts
    assert t.corpus == ["cat", "kitten", "dog", "puppy", "wolf", "hound", "fox"]
    assert [t.corpus[i] for i in t.corpus_ids] == corpus
    assert t.queries == ["a small cat", "a big dog"] and t.row_query.tolist() == [0, 1, 1]
    assert [t.corpus[i] for i in t.positives.row(1)] == ["dog", "hound"]


def test_exclude_anchor_text():
    # A query's own text is never its negative by default, as in ST >= 6.3; exclude_anchor_text=False gives back
    # ST 6.2's behaviour, where "cat" could be mined as a negative of the query "cat".
    ds = Dataset.from_dict({"anchor": ["cat", "dog"], "positive": ["kitten", "puppy"]})
    corpus = ["cat", "dog", "cats", "dogs", "fox"]
    plain = mine_from_dataset(ds, TrigramModel(), corpus=corpus, num_negatives=2, verbose=False)
    assert all(a != n for a, _, n in rows_of(plain))
    assert rows_of(plain) == rows_of(st_mine(ds, TrigramModel(), corpus=corpus, num_negatives=2, verbose=False))
    loose = mine_from_dataset(ds, TrigramModel(), corpus=corpus, num_negatives=2, verbose=False,
                              exclude_anchor_text=False)
    assert ("cat", "kitten", "cat") in rows_of(loose)


@pytest.mark.parametrize("output_format", ["triplet", "n-tuple"])
@pytest.mark.parametrize("params", [dict(), dict(range_min=1, range_max=6), dict(relative_margin=0.05),
                                    dict(range_min=2, range_max=5, max_score=0.7)])
def test_anchor_texts_in_corpus_and_repeated_rows_as_sentence_transformers(output_format, params):
    """Anchors that are corpus texts (ST 6.3 never mines them for themselves) and an (anchor, positive) row given
    twice (ST counts rows, not distinct positives, in its retrieval depth)."""
    anchors, positives, corpus = pair_rows(n=20, seed=1)
    anchors, positives = anchors + [anchors[3], anchors[3]], positives + [positives[3], positives[3]]
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    corpus = corpus[:40] + anchors[::2] + [a.replace("the ", "") for a in anchors[1::3]]
    model = TrigramModel()
    ours = mine_from_dataset(ds, model, corpus=corpus, output_format=output_format, verbose=False, **params)
    theirs = st_mine(ds, model, corpus=corpus, output_format=output_format, verbose=False, **params)
    assert len(ours) == len(theirs) > 0
    assert rows_of(ours) == rows_of(theirs)


def test_identical_texts_for_embedding_api():
    corpus = ["cat", "dog", "cat", "fox", "dog"]
    ex = identical_texts(["a cat", "dog"], corpus, [[0], [3]], include_query=True)
    assert ex == [[2], [1, 4]]
    pairs = TextPairs.from_rows(["q"], ["cat"], corpus)
    assert pairs.corpus == ["cat", "dog", "fox"]


def test_to_dataset_feeds_sentence_transformers_layout(data):
    q, c, pos = data
    mined = mine_hard_negatives(q, c, pos, num_negatives=2, progress=False)
    texts_q, texts_c = [f"q{i}" for i in range(len(q))], [f"d{i}" for i in range(len(c))]
    ds = mined.to_dataset(texts_q, texts_c)
    assert ds.column_names == ["anchor", "positive", "negative_1", "negative_2"]
    assert len(ds) == sum(len(p) for p in pos)
    row = ds[0]
    assert row["negative_1"] == f"d{mined.indices[0, 0]}" and row["positive"] == f"d{pos[0][0]}"
    trip = mined.to_dataset(texts_q, texts_c, output_format="triplet", output_scores=True)
    assert len(trip) == 2 * len(ds) and len(trip[0]["scores"]) == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(anchor_column_name="question"), "anchor_column_name = 'question'"),
    (dict(positive_column_name="nope"), "positive_column_name"),
    (dict(corpus=["ok", 3]), r"corpus\[1\]"),
    (dict(output_format="pairs"), "output_format"),
    (dict(sampling_strategy="best"), "sampling_strategy"),
])
def test_bad_input_named(rows, kwargs, match):
    ds, _ = rows
    model = TrigramModel()
    with pytest.raises((ValueError, TypeError), match=match):
        mine_from_dataset(ds, model, verbose=False, **kwargs)
    assert model.calls == 0


def test_model_without_encode_and_non_text_rows():
    ds = Dataset.from_dict({"a": ["x", "y"], "b": ["u", "v"]})
    with pytest.raises(TypeError, match="model must have an encode"):
        mine_from_dataset(ds, object(), verbose=False)
    with pytest.raises(TypeError, match=r"dataset\['b'\]\[0\]"):
        mine_from_dataset(Dataset.from_dict({"a": ["x"], "b": [1]}), TrigramModel(), verbose=False)


def test_embedding_cache_reused(rows, tmp_path):
    ds, corpus = rows
    model = TrigramModel()
    first = mine_from_dataset(ds, model, corpus=corpus, verbose=False, cache_folder=tmp_path)
    calls = model.calls
    second = mine_from_dataset(ds, model, corpus=corpus, verbose=False, cache_folder=tmp_path)
    assert model.calls == calls == 2
    assert rows_of(first) == rows_of(second)
    assert len(list(tmp_path.glob("*.npy"))) == 2
