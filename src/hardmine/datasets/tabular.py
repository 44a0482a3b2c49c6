"""Labelled arrays for classification, and user data from `.npz`, CSV or parquet files.

`LabeledData` is what every loader of this package returns: float32 features, int64 class ids in [0, C), a test
split, and the class names. A file without a test split gets a stratified one, seeded.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_TABLE_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class LabeledData:
    """A classification data set split into train and test.

    x_train: float32 [N, *shape] features (images as [N, C, H, W]); y_train: int64 [N] class ids in [0, C).
    x_test: float32 [M, *shape]; y_test: int64 [M]. classes: the C class names, in id order.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        """C, the number of classes."""
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample's features."""
        return tuple(self.x_train.shape[1:])


def check_classes(y: np.ndarray, where: str) -> None:
    """Raise ValueError when the labels `y` [N] hold fewer than two distinct classes."""
    present = np.unique(y)
    if present.size < 2:
        raise ValueError(f"{where} has {present.size} class(es) ({present.tolist()}): classification needs at least 2")


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row indices (int64, sorted) with about `test_fraction` of every class in the test part.

    A class of n samples puts n * test_fraction (rounded half up) of them in the test part, at least one when n >= 2 and
    never all of them, so every class keeps a training sample. Seeded by `seed`.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        k = min(max(int(rows.size * test_fraction + 0.5), 1 if rows.size >= 2 else 0), rows.size - 1)
        test.append(rows[:k])
    test_rows = np.sort(np.concatenate(test)).astype(np.int64)
    train_rows = np.setdiff1d(np.arange(y.size, dtype=np.int64), test_rows)
    return train_rows, test_rows


def standardize(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays scaled to zero mean and unit variance per feature, with the training part's statistics."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def encode_labels(*parts: np.ndarray) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """Class ids (int64, in sorted order of the distinct values over all parts) and the class names."""
    values = np.unique(np.concatenate([np.asarray(p).ravel() for p in parts]))
    ids = [np.searchsorted(values, np.asarray(p).ravel()).astype(np.int64) for p in parts]
    return ids, tuple(str(v) for v in values)


def from_arrays(name: str, x: np.ndarray, y: np.ndarray, x_test: np.ndarray | None = None,
                y_test: np.ndarray | None = None, test_fraction: float = 0.25, seed: int = 0,
                scale: bool = True) -> LabeledData:
    """LabeledData from features `x` [N, *shape] and labels `y` [N] of any type (strings, ints, ...).

    Without `x_test`/`y_test`, a stratified test split of `test_fraction` is made with `seed`. With scale=True the
    features are standardised with the training part's mean and standard deviation.
    """
    x = _as_features(x, "X")
    y = np.asarray(y).ravel()
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"X has {x.shape[0]} rows but y has {y.shape[0]} labels")
    if (x_test is None) != (y_test is None):
        raise ValueError("give both X_test and y_test, or neither")
    check_classes(y, f"the labels of {name}")
    if x_test is None:
        train_rows, test_rows = stratified_split(encode_labels(y)[0][0], test_fraction, seed)
        x, x_test, y, y_test = x[train_rows], x[test_rows], y[train_rows], y[test_rows]
    else:
        x_test = _as_features(x_test, "X_test")
        y_test = np.asarray(y_test).ravel()
        if x_test.shape[1:] != x.shape[1:] or y_test.shape[0] != x_test.shape[0]:
            raise ValueError(f"X_test {x_test.shape} and y_test {y_test.shape} do not match X {x.shape}")
    (y_ids, y_test_ids), classes = encode_labels(y, y_test)
    if scale:
        x, x_test = standardize(x, x_test)
    return LabeledData(name, x, y_ids, x_test, y_test_ids, classes)


def _as_features(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{what} must have shape [N, features] with N >= 1, got {x.shape}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise ValueError(f"{what} must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{what} holds NaN or inf values")
    return x


def _check_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a directory, not a data file")
    if not path.is_file():
        raise FileNotFoundError(f"{option} {str(path)!r} does not exist")


def read_arrays(path: str | Path, option: str = "--dataset") -> dict[str, np.ndarray]:
    """Every array of a user's `.npz` file, without pickle; a ValueError naming `option` and the file when it is a
    directory, cut short or not an archive, or holds Python objects (FileNotFoundError when it does not exist)."""
    path = Path(path)
    _check_file(path, option)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return {k: arrays[k] for k in arrays.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"{option} {path.name}: an array holds Python objects (dtype object); save numeric "
                             "arrays") from None
        raise ValueError(f"{option} {path.name} cannot be read as .npz ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{option} {path.name} cannot be read as .npz ({err}): cut short or not an archive") from None


def read_frame(path: str | Path, option: str = "--dataset") -> Any:
    """A user's CSV or parquet file as a pandas DataFrame; a ValueError naming `option` and the file when it is a
    directory, empty or unreadable (FileNotFoundError when it does not exist)."""
    import pandas as pd

    path = Path(path)
    _check_file(path, option)
    try:
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as err:
        raise ValueError(f"{option} {path.name} cannot be read as a table ({' '.join(str(err).split())})") from None
    if frame.shape[0] == 0:
        raise ValueError(f"{option} {path.name} has no rows")
    return frame


def load_table(path: str | Path, label_column: str | None = None, test_fraction: float = 0.25,
               seed: int = 0) -> LabeledData:
    """User data: a `.npz` with arrays X, y (and optional X_test, y_test), or a CSV / parquet file.

    For CSV and parquet, `label_column` names the label column; every other column is a feature and must be
    numeric. Features are standardised with the training part's statistics.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        arrays = read_arrays(path)
        missing = [k for k in ("X", "y") if k not in arrays]
        if missing:
            raise ValueError(f"{path.name} lacks array(s) {missing}; it has {sorted(arrays)}")
        return from_arrays(path.stem, arrays["X"], arrays["y"], arrays.get("X_test"), arrays.get("y_test"),
                           test_fraction, seed)
    if suffix not in _TABLE_SUFFIXES:
        raise ValueError(f"data file must end in .npz, .csv or .parquet, got {path.name!r}")
    import pandas as pd

    frame = read_frame(path)
    if label_column is None:
        raise ValueError(f"{path.name} is a table: give its label column (--label-column); columns: "
                         f"{list(frame.columns)}")
    if label_column not in frame.columns:
        raise ValueError(f"label column {label_column!r} is not in {path.name}; columns: {list(frame.columns)}")
    features = frame.drop(columns=[label_column])
    text = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if text:
        raise ValueError(f"feature columns of {path.name} must be numeric; not numeric: {text}")
    if features.shape[1] == 0:
        raise ValueError(f"{path.name} has no feature column besides {label_column!r}")
    labels = frame[label_column]
    if labels.isna().any():
        raise ValueError(f"label column {label_column!r} of {path.name} has {int(labels.isna().sum())} empty values")
    return from_arrays(path.stem, features.to_numpy(), labels.to_numpy(), test_fraction=test_fraction, seed=seed)
