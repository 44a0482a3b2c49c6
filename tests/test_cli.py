"""mine-negatives from embeddings, from texts (the bundled MiniLM), from WordNet; errors exit 2 in one line."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardmine.cli import app

runner = CliRunner()


@pytest.fixture
def npy_inputs(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "q.npy", rng.standard_normal((6, 8)).astype(np.float32))
    np.save(tmp_path / "c.npy", rng.standard_normal((40, 8)).astype(np.float32))
    (tmp_path / "qrels.tsv").write_text("query\tcorpus\n" + "".join(f"{i}\t{i * 3}\n" for i in range(6)) + "0\t1\n")
    return tmp_path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def invoke(*args):
    return runner.invoke(app, ["mine-negatives", *map(str, args), "--no-progress"])


def test_embeddings_to_parquet_ids(npy_inputs):
    d = npy_inputs
    result = invoke("--queries", d / "q.npy", "--corpus", d / "c.npy", "--qrels", d / "qrels.tsv",
                    "--out", d / "out.parquet", "--num-negatives", 3)
    assert result.exit_code == 0, result.output
    table = pq.read_table(d / "out.parquet").to_pydict()
    assert table["anchor"] == [0, 0, 1, 2, 3, 4, 5] and table["positive"][:2] == [0, 1]
    assert set(table) == {"anchor", "positive", "negative_1", "negative_2", "negative_3"}
    assert "negatives_found" in result.output and "wrote 7 rows" in result.output


@pytest.mark.parametrize("override, message", [
    ({"--queries": "missing.npy"}, "error: queries file not found"),
    ({"--out": "out.csv"}, "error: --out must end in .parquet or .jsonl"),
    ({"--relative-margin": "2"}, "error: relative_margin must be in [0.0, 1.0], got 2.0"),
    ({"--queries": "q1.npy"}, "error: --queries q1.npy must hold a non-empty 2-D [n, d] array of numbers, got dtype "
                              "float32 of shape (6,)"),
    ({"--queries": "trunc.npy"}, "error: --queries trunc.npy cannot be read as a .npy array"),
    ({"--queries": "objects.npy"}, "error: --queries objects.npy cannot be read as a .npy array"),
    ({"--num-negatives": "0"}, "error: --num-negatives must be >= 1, got 0"),
    ({"--seed": "-1"}, "error: --seed must be >= 0, got -1"),
    ({"--out": "a_directory.parquet"}, "error: --out a_directory.parquet is a directory"),
])
def test_user_errors_exit_2_with_one_line(npy_inputs, monkeypatch, override, message):
    """Each user error is refused in one line before anything is mined."""
    import hardmine.retrieval.mining

    def never(*args, **kwargs):
        raise AssertionError("mined before the inputs were checked")

    monkeypatch.setattr(hardmine.retrieval.mining, "mine_hard_negatives", never)
    monkeypatch.chdir(npy_inputs)
    np.save(npy_inputs / "q1.npy", np.zeros(6, dtype=np.float32))
    (npy_inputs / "trunc.npy").write_bytes((npy_inputs / "q.npy").read_bytes()[:100])
    np.save(npy_inputs / "objects.npy", np.array([{"a": 1}] * 6, dtype=object), allow_pickle=True)
    (npy_inputs / "a_directory.parquet").mkdir()
    options = {"--queries": "q.npy", "--corpus": "c.npy", "--qrels": "qrels.tsv", "--out": "out.parquet", **override}
    result = invoke(*[x for pair in options.items() for x in pair])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert "Traceback" not in result.output
    assert not (npy_inputs / "out.parquet").exists()  # nothing written


def test_dimension_mismatch_is_a_user_error(npy_inputs):
    d = npy_inputs
    np.save(d / "c5.npy", np.ones((40, 5), dtype=np.float32))
    result = invoke("--queries", d / "q.npy", "--corpus", d / "c5.npy", "--qrels", d / "qrels.tsv",
                    "--out", d / "o.jsonl")
    assert result.exit_code == 2 and "query_emb has dimension 8 but corpus_emb has 5" in result.output


def test_texts_with_the_bundled_model(tmp_path):
    docs = ["a dog barks", "a cat meows", "the stock market fell", "bread is baked in an oven",
            "a puppy is a young dog", "kittens are young cats", "bonds and shares", "flour and water"]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in ["canine", "feline"]))
    (tmp_path / "qrels.jsonl").write_text('{"query_id": 0, "corpus_id": 0}\n{"query_id": 1, "corpus_id": 1}\n')
    result = invoke("--queries", tmp_path / "q.jsonl", "--corpus", tmp_path / "c.jsonl", "--qrels",
                    tmp_path / "qrels.jsonl", "--out", tmp_path / "out.jsonl", "--num-negatives", 2)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert rows[0]["anchor"] == "canine" and rows[0]["positive"] == "a dog barks"
    assert rows[0]["negative_1"] == "a puppy is a young dog"  # the nearest non-positive: a false negative
    assert rows[1]["negative_1"] == "kittens are young cats"


def test_wordnet_source_and_its_missing_data_message(tmp_path):
    (tmp_path / "data.noun").write_text(
        "00015388 03 n 01 animal 0 002 ~ 02084071 n 0000 ~ 02121620 n 0000 | a living organism  \n"
        "02084071 05 n 02 dog 0 domestic_dog 0 001 @ 00015388 n 0000 | a member of the genus Canis  \n"
        "02121620 05 n 01 cat 0 001 @ 00015388 n 0000 | feline mammal usually having thick soft fur  \n")
    result = invoke("--wordnet", tmp_path, "--out", tmp_path / "wn.parquet", "--num-negatives", 2)
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "wn.parquet").num_rows > 0
    missing = invoke("--wordnet", tmp_path / "nowhere", "--out", tmp_path / "x.parquet")
    assert missing.exit_code == 2 and "apt-get download wordnet-base" in missing.output


def write_texts(tmp_path, docs, queries, qrels):
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    (tmp_path / "q.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in queries))
    (tmp_path / "qrels.jsonl").write_text("".join(json.dumps({"query_id": q, "corpus_id": c}) + "\n"
                                                  for q, c in qrels))
    return ["--queries", tmp_path / "q.jsonl", "--corpus", tmp_path / "c.jsonl", "--qrels", tmp_path / "qrels.jsonl"]


def test_margin_on_by_default_duplicates_merged_and_cache_reused(tmp_path):
    docs = ["cat", "a dog barks", "cat", "kitten", "feline", "tiger", "the stock market fell", "bread", "flour",
            "a cat sleeps", "dog", "puppy", "shares", "bonds", "water"]
    args = write_texts(tmp_path, docs, ["a small cat", "a loyal dog"], [(0, 0), (1, 1)])
    first = runner.invoke(app, ["mine-negatives", *map(str, args), "--out", str(tmp_path / "o.jsonl"),
                                "--num-negatives", "3", "--cache-dir", str(tmp_path / "cache")])
    assert first.exit_code == 0, first.output
    assert "dropped_relative_margin" in first.stdout
    assert "encoding 2 queries" in first.stderr and "mining 2 queries against 14 corpus rows" in first.stderr
    rows = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert all(r["positive"] not in [r[f"negative_{j}"] for j in (1, 2, 3)] for r in rows)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2
    again = runner.invoke(app, ["mine-negatives", *map(str, args), "--out", str(tmp_path / "o2.jsonl"),
                                "--num-negatives", "3", "--cache-dir", str(tmp_path / "cache")])
    assert again.exit_code == 0 and "read from the cache" in again.stderr and "encoding" not in again.stderr
    assert (tmp_path / "o2.jsonl").read_text() == (tmp_path / "o.jsonl").read_text()
    plain = invoke(*args, "--out", tmp_path / "o3.jsonl", "--num-negatives", 3, "--no-margin", "--no-cache")
    assert plain.exit_code == 0 and "dropped_relative_margin" not in plain.stdout


def test_warning_when_negatives_outscore_positives(npy_inputs):
    d = npy_inputs
    q = np.load(d / "q.npy")
    c = np.load(d / "c.npy")
    c[[0, 3, 6, 9, 12, 15]] = -q  # every positive becomes the opposite of its query: negatives outscore it
    np.save(d / "c_far.npy", c)
    result = invoke("--queries", d / "q.npy", "--corpus", d / "c_far.npy", "--qrels", d / "qrels.tsv",
                    "--out", d / "o.parquet", "--num-negatives", 2, "--no-margin")
    assert result.exit_code == 0, result.output
    assert "warning: negatives score higher than positives" in result.stderr


def test_corpus_limit_keeps_positives(npy_inputs):
    d = npy_inputs
    result = invoke("--queries", d / "q.npy", "--corpus", d / "c.npy", "--qrels", d / "qrels.tsv",
                    "--out", d / "o.parquet", "--num-negatives", 2, "--corpus-limit", 5, "--no-margin")
    assert result.exit_code == 0, result.output
    table = pq.read_table(d / "o.parquet").to_pydict()
    kept = np.union1d([0, 1, 3, 6, 9, 12, 15], np.arange(5))
    assert set(table["negative_1"]) | set(table["negative_2"]) <= set(range(len(kept)))
    assert table["positive"][:2] == [0, 1] and table["positive"][2] == int(np.searchsorted(kept, 3))
    bad = invoke("--queries", d / "q.npy", "--corpus", d / "c.npy", "--qrels", d / "qrels.tsv",
                 "--out", d / "o.parquet", "--corpus-limit", 0)
    assert bad.exit_code == 2 and "--corpus-limit must be >= 1, got 0" in bad.output
