"""The digits loader: shapes, scaling, a stratified seeded split."""

import numpy as np

from hardmine.datasets.digits import load_digits


def test_digits_images_split_stratified_and_seeded():
    data = load_digits(test_fraction=0.25, seed=0)
    assert data.x_train.shape[1:] == (1, 8, 8) and data.x_train.dtype == np.float32
    assert data.x_train.shape[0] + data.x_test.shape[0] == 1797
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    assert data.num_classes == 10
    share = np.bincount(data.y_test, minlength=10) / np.bincount(np.concatenate([data.y_train, data.y_test]))
    assert np.all(np.abs(share - 0.25) < 0.02)
    again = load_digits(test_fraction=0.25, seed=0)
    assert np.array_equal(again.y_test, data.y_test) and np.array_equal(again.x_test, data.x_test)
    assert not np.array_equal(load_digits(test_fraction=0.25, seed=1).x_test, data.x_test)
