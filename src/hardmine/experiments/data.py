"""The data a comparison runs on: a named or user data set, then optional class imbalance and label noise.

Both corruptions touch the training part only (the test part keeps its true labels and class balance) and are
seeded, so every strategy and seed of a comparison trains on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hardmine.datasets import DATASETS
from hardmine.datasets.tabular import LabeledData, check_classes


def load_dataset(dataset: str, data_dir: Path | None = None, label_column: str | None = None,
                 test_fraction: float = 0.25, seed: int = 0) -> LabeledData:
    """A named data set ("digits", "fashion-mnist", "shuttle"; files from `data_dir`) or a user file (.npz, .csv,
    .parquet; tables need `label_column`). Splits made here are stratified and seeded with `seed`."""
    if dataset in DATASETS:
        data = DATASETS[dataset](data_dir, test_fraction, seed)
    elif Path(dataset).suffix.lower() in (".npz", ".csv", ".parquet"):
        from hardmine.datasets.tabular import load_table

        data = load_table(dataset, label_column, test_fraction, seed)
    else:
        raise ValueError(f"dataset must be one of {list(DATASETS)} or a .npz/.csv/.parquet file, got {dataset!r}")
    check_classes(data.y_train, f"the training part of {data.name}")
    return data


def subsample_geometric(data: LabeledData, ratio: float, seed: int) -> LabeledData:
    """Class imbalance: class c (of C, in id order) keeps round(n_c * ratio^(c / (C - 1))) training samples, at
    least one: class 0 keeps everything, the last class a fraction `ratio` in (0, 1]."""
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"--imbalance must be in (0, 1] (the kept fraction of the rarest class), got {ratio}")
    rng = np.random.default_rng(seed)
    classes = data.num_classes
    keep = []
    for c in range(classes):
        rows = np.flatnonzero(data.y_train == c)
        fraction = ratio ** (c / max(classes - 1, 1))
        count = max(1, int(round(rows.size * fraction))) if rows.size else 0
        keep.append(rng.permutation(rows)[:count])
    rows = np.sort(np.concatenate(keep))
    return replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])


@dataclass(frozen=True)
class LabelNoise:
    """Symmetric label noise: `flipped` training indices (int64, sorted) got a different, uniformly drawn class;
    `clean_labels` [N] are the labels before."""

    fraction: float
    seed: int
    flipped: np.ndarray
    clean_labels: np.ndarray


def flip_labels(data: LabeledData, fraction: float, seed: int) -> tuple[LabeledData, LabelNoise]:
    """Symmetric noise: round(fraction * N) training samples, chosen at random, get one of the other C - 1 classes
    uniformly at random. Returns the noisy data and what was flipped."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"--label-noise must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    y = data.y_train.copy()
    flipped = np.sort(rng.choice(y.size, size=int(round(fraction * y.size)), replace=False)).astype(np.int64)
    shift = rng.integers(1, data.num_classes, size=flipped.size)
    y[flipped] = (y[flipped] + shift) % data.num_classes
    noise = LabelNoise(fraction, seed, flipped, data.y_train.copy())
    return replace(data, y_train=y), noise
