"""`--validation-file`: a user's validation split, read from an .npz with arrays x (or X) and y.

Its labels are matched to the training data's class names (the same classes, no more, no fewer) and its features
must have the training samples' shape. Features are taken as the training data is loaded: a built-in data set's as
they are (digits and fashion-mnist: pixels in [0, 1]); a `--dataset` file's are standardised with the statistics
its training part was standardised with (as `hardmine.datasets.tabular.from_arrays` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hardmine.datasets.tabular import LabeledData, encode_labels, read_arrays, read_frame, stratified_split

_OPTION = "--validation-file"
_FILE_SUFFIXES = (".npz", ".csv", ".parquet")


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{_OPTION} must be an .npz file with arrays x (or X) and y, got {path.name!r}")
    arrays = read_arrays(path, _OPTION)
    key = "x" if "x" in arrays else "X"
    if key not in arrays or "y" not in arrays:
        raise ValueError(f"{_OPTION} {path.name} must hold arrays x (or X) and y; it has {sorted(arrays)}")
    x, y = np.asarray(arrays[key]), np.asarray(arrays["y"]).ravel()
    if x.ndim < 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{_OPTION} {path.name}: x {x.shape} and y {y.shape} must hold one row per label, at least "
                         "one")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise ValueError(f"{_OPTION} {path.name}: x must be finite numbers, got dtype {x.dtype}")
    if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    return x.astype(np.float32), y


def _file_statistics(dataset: str, label_column: str | None, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and standard deviation a `--dataset` file's training part was standardised with."""
    path = Path(dataset)
    if path.suffix.lower() == ".npz":
        arrays = read_arrays(path)
        x, y, split = arrays["X"], arrays["y"], "X_test" not in arrays
    else:
        frame = read_frame(path)
        x, y, split = frame.drop(columns=[label_column]).to_numpy(), frame[label_column].to_numpy(), True
    x = np.asarray(x).astype(np.float32)
    x = x.reshape(x.shape[0], -1) if x.ndim == 1 else x
    if split:
        x = x[stratified_split(encode_labels(np.asarray(y).ravel())[0][0], test_fraction, seed)[0]]
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 0, std, 1.0)


def load_validation_file(path: str | Path, data: LabeledData, dataset: str, label_column: str | None = None,
                         test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 [V, *shape] and class ids int64 [V] (in `data`'s class order) of the validation file;
    ValueError naming --validation-file when its classes or its feature shape differ from `data`'s training part."""
    path = Path(path)
    x, y = _read(path)
    if tuple(x.shape[1:]) != data.input_shape:
        raise ValueError(f"{_OPTION} {path.name}: samples have shape {tuple(x.shape[1:])} but the training samples "
                         f"{data.input_shape}")
    names = [str(v) for v in np.unique(y)]
    index = {name: i for i, name in enumerate(data.classes)}
    present = {data.classes[i] for i in np.unique(data.y_train)}
    unknown = [n for n in names if n not in index]
    missing = sorted(present - set(names), key=lambda n: index[n])
    if unknown or missing:
        known = sorted(present, key=index.get)
        raise ValueError(f"{_OPTION} {path.name}: its classes differ from the training data's {known} (not in the "
                         f"training data: {unknown}; missing: {missing})")
    ids = np.array([index[str(v)] for v in y], dtype=np.int64)
    if Path(dataset).suffix.lower() in _FILE_SUFFIXES:
        mean, std = _file_statistics(dataset, label_column, test_fraction, seed)
        x = ((x - mean) / std).astype(np.float32)
    return x, ids
