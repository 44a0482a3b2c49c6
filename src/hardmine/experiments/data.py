"""The data a comparison runs on: a named or user data set, a stratified validation split carved from its training
part, then optional class imbalance and label noise.

The corruptions touch the training part only (the validation and test parts keep their true labels and class
balance). The imbalance is seeded by the data seed; the label noise by the data seed alone (`fixed`) or by the data
seed and the run's seed (`per-seed`), so that the spread over seeds includes the variance between noise draws.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hardmine._checks import check_choice
from hardmine.datasets import DATASETS
from hardmine.datasets.tabular import LabeledData, check_classes, stratified_split

NOISE_SEEDS = ("per-seed", "fixed")


@dataclass(frozen=True)
class Splits:
    """A classification data set in three parts: `train` (its x_train / y_train are trained on, its x_test /
    y_test are the test part, which only reports), and the validation part `x_val` float32 [V, *shape], `y_val`
    int64 [V], which picks the target and says when a run reaches it."""

    train: LabeledData
    x_val: np.ndarray
    y_val: np.ndarray

    @property
    def name(self) -> str:
        """The data set's name."""
        return self.train.name


def split_validation(data: LabeledData, fraction: float, seed: int) -> Splits:
    """Carve a stratified validation part of about `fraction` of every class from the training part (seeded);
    ValueError naming --validation when the fraction is not in (0, 1) or a class would be left without samples."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"--validation must be in (0, 1) (the held-out fraction of the training data that picks "
                         f"the target; 0 would pick it on the test data), got {fraction}")
    counts = np.bincount(data.y_train, minlength=data.num_classes)
    small = [data.classes[c] for c in range(data.num_classes) if counts[c] < 2]
    if small:
        raise ValueError(f"--validation {fraction}: classes {small} have fewer than 2 training samples, so the "
                         "split leaves the training or the validation part without them")
    train_rows, val_rows = stratified_split(data.y_train, fraction, seed)
    train = replace(data, x_train=data.x_train[train_rows], y_train=data.y_train[train_rows])
    return Splits(train, data.x_train[val_rows], data.y_train[val_rows])


def noise_seed(mode: str, data_seed: int, seed: int) -> int:
    """The seed of run `seed`'s label noise: `data_seed` when `mode` is "fixed", else one per run seed."""
    check_choice("--noise-seed", mode, NOISE_SEEDS)
    return data_seed if mode == "fixed" else data_seed * 1_000_003 + seed + 1


def load_dataset(dataset: str, data_dir: Path | None = None, label_column: str | None = None,
                 test_fraction: float = 0.25, seed: int = 0) -> LabeledData:
    """A named data set ("digits", "fashion-mnist", "shuttle"; files from `data_dir`) or a user file (.npz, .csv,
    .parquet; tables need `label_column`). Splits made here are stratified and seeded with `seed`."""
    if dataset in DATASETS:
        data = DATASETS[dataset].load(data_dir, test_fraction, seed)
    elif Path(dataset).suffix.lower() in (".npz", ".csv", ".parquet"):
        from hardmine.datasets.tabular import load_table

        data = load_table(dataset, label_column, test_fraction, seed)
    else:
        check_choice("dataset", dataset, list(DATASETS), "a .npz/.csv/.parquet file")  # raises: neither
    if data.y_train.size < 2 or data.y_test.size < 1:
        raise ValueError(f"--dataset {dataset}: {data.y_train.size} training and {data.y_test.size} test rows are "
                         f"too few to split (--test-fraction {test_fraction}, then --validation); give more rows")
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
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
        raise ValueError(f"--label-noise must be in [0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    y = data.y_train.copy()
    flipped = np.sort(rng.choice(y.size, size=int(round(fraction * y.size)), replace=False)).astype(np.int64)
    shift = rng.integers(1, data.num_classes, size=flipped.size)
    y[flipped] = (y[flipped] + shift) % data.num_classes
    noise = LabelNoise(fraction, seed, flipped, data.y_train.copy())
    return replace(data, y_train=y), noise


def stratified_subset(data: LabeledData, size: int, seed: int) -> LabeledData:
    """About `size` training samples, the same fraction of every class (seeded); the test part is kept whole."""
    n = data.y_train.size
    if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size < n:
        raise ValueError(f"--train-subset must be an integer in [2, {n}) (the training samples of {data.name}), "
                         f"got {size!r}")
    _, rows = stratified_split(data.y_train, size / n, seed)
    return replace(data, x_train=data.x_train[rows], y_train=data.y_train[rows])
