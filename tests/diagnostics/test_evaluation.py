"""Per-class recall, macro-F1 against scikit-learn, difficulty slices and slice accuracy."""

import numpy as np
import pytest

from hardmine.diagnostics.evaluation import difficulty_slices, macro_f1, per_class_recall, slice_accuracy


def test_recall_and_macro_f1_match_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 5, 200))
    assert np.allclose(per_class_recall(pred, y, 5)[:4], metrics.recall_score(y, pred, labels=range(4), average=None))
    assert np.isnan(per_class_recall(pred, y, 5)[4])
    assert macro_f1(pred, y, 5) == pytest.approx(metrics.f1_score(y, pred, labels=range(4), average="macro"))


def test_slices_are_equal_sized_quantiles_easy_to_hard():
    loss = np.array([5.0, 0.1, 3.0, 0.2, 4.0, 1.0, 2.0, 0.3, 0.4, 6.0])
    slices = difficulty_slices(loss, 5)
    assert np.bincount(slices).tolist() == [2, 2, 2, 2, 2]
    assert slices[np.argmin(loss)] == 0 and slices[np.argmax(loss)] == 4
    pred = np.zeros(10, dtype=np.int64)
    y = np.where(slices >= 3, 1, 0)
    assert slice_accuracy(pred, y, slices, 5).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
