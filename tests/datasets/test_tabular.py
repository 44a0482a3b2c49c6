"""User data: .npz with or without a test split, CSV and parquet with a label column, and the errors."""

import numpy as np
import pandas as pd
import pytest

from hardmine.datasets.tabular import load_table, stratified_split


def frame(n=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 5 + 3,
                         "kind": np.where(np.arange(n) % 3 == 0, "cat", "dog")})


def test_npz_with_and_without_test_split(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 5
    np.savez(tmp_path / "d.npz", X=x, y=y)
    data = load_table(tmp_path / "d.npz")
    assert data.x_train.shape == (30, 3) and data.x_test.shape == (10, 3) and data.num_classes == 5
    np.savez(tmp_path / "e.npz", X=x, y=y, X_test=x[:5], y_test=y[:5])
    data = load_table(tmp_path / "e.npz")
    assert data.x_train.shape == (40, 3) and data.y_test.tolist() == [0, 1, 2, 3, 4]


def test_csv_and_parquet_with_label_column(tmp_path):
    frame().to_csv(tmp_path / "d.csv", index=False)
    frame().to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.parquet"):
        data = load_table(tmp_path / name, label_column="kind")
        assert data.classes == ("cat", "dog") and data.x_train.shape[1] == 2
        assert data.x_train.shape[0] + data.x_test.shape[0] == 60


@pytest.mark.parametrize("make, message", [
    (lambda p: frame().to_csv(p / "d.csv", index=False), "label column 'label' is not in d.csv"),
    (lambda p: frame().assign(kind="dog").to_csv(p / "d.csv", index=False), "1 class"),
    (lambda p: frame().assign(b="text").to_csv(p / "d.csv", index=False), "not numeric: \\['b'\\]"),
])
def test_table_errors_name_the_problem(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_table(tmp_path / "d.csv", label_column="label" if "label column" in message else "kind")


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_table(tmp_path / "nope.csv", label_column="y")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ValueError, match=".npz, .csv or .parquet"):
        load_table(tmp_path / "d.txt")


def test_stratified_split_keeps_a_training_sample_of_every_class():
    y = np.array([0] * 10 + [1] * 2 + [2])
    train, test = stratified_split(y, 0.5, seed=0)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(13))
    assert set(y[train].tolist()) == {0, 1, 2}
    assert np.bincount(y[test], minlength=3).tolist() == [5, 1, 0]
