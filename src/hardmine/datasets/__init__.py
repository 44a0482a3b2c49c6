"""Real data sets that work offline, one module each, loaded the standard way.

`DATASETS` maps the names `hardmine compare --dataset` accepts to loaders `(data_dir, test_fraction, seed) ->
LabeledData`; each loader imports its module on first use. Register another with `@DATASETS.register(name)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hardmine.registry import Registry

if TYPE_CHECKING:
    from hardmine.datasets.tabular import LabeledData

DATASETS = Registry("dataset")


@DATASETS.register("digits")
def digits(data_dir: Path | None, test_fraction: float, seed: int) -> LabeledData:
    """scikit-learn's 8x8 digits (1,797 images, 10 classes), split stratified by `test_fraction` and `seed`."""
    from hardmine.datasets.digits import load_digits

    return load_digits(test_fraction, seed)


@DATASETS.register("fashion-mnist")
def fashion_mnist(data_dir: Path | None, test_fraction: float, seed: int) -> LabeledData:
    """Fashion-MNIST's idx files from `data_dir` (or the Debian package's place), with its own test split."""
    from hardmine.datasets.fashion_mnist import load_fashion_mnist

    return load_fashion_mnist(data_dir)


@DATASETS.register("shuttle")
def shuttle(data_dir: Path | None, test_fraction: float, seed: int) -> LabeledData:
    """The Statlog shuttle table (58,000 rows, 7 very unequal classes), split stratified."""
    from hardmine.datasets.shuttle import load_shuttle

    return load_shuttle(data_dir, test_fraction, seed)
