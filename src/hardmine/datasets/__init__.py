"""Real data sets that work offline, one module each, loaded the standard way.

`DATASETS` maps the names `hardmine compare --dataset` accepts to `DatasetLoader` subclasses, whose
`load(data_dir, test_fraction, seed) -> LabeledData` imports the data set's module on first use. Register another
by subclassing `DatasetLoader` with a class attribute `name = "..."`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hardmine.registry import Registered, Registry

if TYPE_CHECKING:
    from hardmine.datasets.tabular import LabeledData

DATASETS = Registry("dataset")


class DatasetLoader(Registered):
    """A named data set: a subclass sets `name` and writes `load(data_dir, test_fraction, seed)`."""

    registry = DATASETS

    @staticmethod
    def load(data_dir: Path | None, test_fraction: float, seed: int) -> LabeledData:
        """The data set, with its test split (`test_fraction` of the rows, stratified and seeded, when it has
        none of its own); files come from `data_dir` where the data set needs files."""
        raise NotImplementedError


class Digits(DatasetLoader):
    """scikit-learn's 8x8 digits (1,797 images, 10 classes), split stratified by `test_fraction` and `seed`."""

    name = "digits"

    @staticmethod
    def load(data_dir: Path | None, test_fraction: float, seed: int) -> LabeledData:
        """The digits, split stratified by `test_fraction` and `seed` (`data_dir` is not used)."""
        from hardmine.datasets.digits import load_digits

        return load_digits(test_fraction, seed)


class FashionMNIST(DatasetLoader):
    """Fashion-MNIST's idx files from `data_dir` (or the Debian package's place), with its own test split."""

    name = "fashion-mnist"

    @staticmethod
    def load(data_dir: Path | None, test_fraction: float, seed: int) -> LabeledData:
        """Fashion-MNIST with its own test split (`test_fraction` and `seed` are not used)."""
        from hardmine.datasets.fashion_mnist import load_fashion_mnist

        return load_fashion_mnist(data_dir)


class Shuttle(DatasetLoader):
    """The Statlog shuttle table (58,000 rows, 7 very unequal classes), split stratified."""

    name = "shuttle"

    @staticmethod
    def load(data_dir: Path | None, test_fraction: float, seed: int) -> LabeledData:
        """The shuttle table from `data_dir`, split stratified by `test_fraction` and `seed`."""
        from hardmine.datasets.shuttle import load_shuttle

        return load_shuttle(data_dir, test_fraction, seed)
