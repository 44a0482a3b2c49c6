import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from hardmine.retrieval import mine_hard_negatives


@pytest.fixture
def mined():
    rng = np.random.default_rng(0)
    q, c = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((6, 4)).astype(np.float32)
    return mine_hard_negatives(q, c, [[0, 1], [2], [0, 1, 2, 3]], num_negatives=2, progress=False)


def test_parquet_with_texts_one_row_per_positive(mined, tmp_path):
    queries, corpus = ["q0", "q1", "q2"], [f"c{i}" for i in range(6)]
    rows = mined.to_parquet(tmp_path / "out.parquet", queries, corpus)
    table = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert list(table) == ["anchor", "positive", "negative_1", "negative_2"]
    assert rows == 2 + 1 + 4 and table["anchor"][:3] == ["q0", "q0", "q1"]
    assert table["positive"][:3] == ["c0", "c1", "c2"]
    assert table["negative_1"][0] == f"c{mined.indices[0, 0]}"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]  # no temporary file left


def test_jsonl_ids_keep_incomplete_rows_on_request(mined, tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    small = mine_hard_negatives(np.eye(2, 4, dtype=np.float32), np.eye(4, dtype=np.float32), [[0, 1, 2], [1]],
                                num_negatives=2, progress=False)
    assert small.to_jsonl(path) == 1  # query 0 has one negative left: dropped
    assert small.to_jsonl(path, drop_incomplete=False) == 4
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows[0] == {"anchor": 0, "positive": 0, "negative_1": 3, "negative_2": None}


def test_text_arguments_are_checked(mined, tmp_path):
    with pytest.raises(ValueError, match="give both queries and corpus"):
        mined.to_parquet(tmp_path / "x.parquet", ["a", "b", "c"])
    with pytest.raises(ValueError, match="queries has 2 texts but 3 queries were mined"):
        mined.to_jsonl(tmp_path / "x.jsonl", ["a", "b"], ["c"] * 6)


def test_summary_counts(mined):
    s = mined.summary()
    assert s["queries"] == 3 and s["negatives_found"] == int(mined.found.sum())
    assert s["candidates"] == int(mined.candidates.sum())
