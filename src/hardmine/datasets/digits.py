"""scikit-learn's digits: 1,797 8x8 grey images of handwritten digits, 10 classes, shipped inside scikit-learn."""

from __future__ import annotations

import numpy as np

from hardmine.datasets.tabular import LabeledData, stratified_split


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> LabeledData:
    """Digits as images [N, 1, 8, 8] with pixels scaled to [0, 1], split stratified by class (seeded)."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as err:
        raise ImportError("the digits data set comes with scikit-learn: pip install scikit-learn") from err
    x, y = sklearn_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = y.astype(np.int64)
    train, test = stratified_split(y, test_fraction, seed)
    return LabeledData("digits", x[train], y[train], x[test], y[test], tuple(str(d) for d in range(10)))
