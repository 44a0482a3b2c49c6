"""Reaching uniform's accuracy, noise-guard precision/recall, means over seeds, and the data corruptions."""

import math

import numpy as np
import pytest

from hardmine.datasets.digits import load_digits
from hardmine.experiments.data import flip_labels, subsample_geometric
from hardmine.experiments.metrics import first_reach, noise_scores, summarize


def run(strategy, seed, accs, backprops, acc=None, recall=(0.5, 1.0, 1.0)):
    curve = {"epoch": list(range(len(accs))), "backprops": backprops, "seconds": [b / 100 for b in backprops],
             "test_acc": accs}
    return {"strategy": strategy, "seed": seed, "test_acc": accs[-1] if acc is None else acc, "macro_f1": 0.5,
            "per_class_recall": list(recall), "slice_acc": [1.0, 0.9, 0.8, 0.7, 0.6], "curve": curve,
            "backprops": backprops[-1], "train_seconds": backprops[-1] / 100, "hardmine_fraction": 0.02}


def test_first_reach_skips_the_start_and_reports_nan_when_never_reached():
    curve = {"test_acc": [0.9, 0.5, 0.8, 0.85], "backprops": [0, 10, 20, 30], "seconds": [0, 1, 2, 3]}
    assert first_reach(curve, 0.8) == (20.0, 2.0)
    assert all(math.isnan(v) for v in first_reach(curve, 0.95))


def test_noise_scores():
    scores = noise_scores(np.array([1, 2, 3, 4]), np.array([2, 4, 6, 8, 10]))
    assert scores == {"noise_precision": 0.5, "noise_recall": 0.4}


def test_summary_ratios_against_uniform():
    runs = [run("uniform", 0, [0.1, 0.6, 0.8], [0, 100, 200]), run("uniform", 1, [0.1, 0.7, 0.8], [0, 100, 200]),
            run("fast", 0, [0.1, 0.85, 0.9], [0, 50, 100]), run("fast", 1, [0.1, 0.7, 0.82], [0, 50, 100]),
            run("slow", 0, [0.1, 0.5, 0.6], [0, 100, 200])]
    baseline, rows = summarize(runs, ["uniform", "fast", "slow"], class_counts=[3, 50, 40])
    assert baseline["test_acc"] == pytest.approx(0.8) and baseline["rare_classes"] == [0, 2]
    fast = rows[1]
    assert fast["test_acc_mean"] == pytest.approx(0.86)
    assert fast["test_acc_std"] == pytest.approx(np.std([0.9, 0.82], ddof=1))
    assert fast["backprops_to_uniform_acc"] == pytest.approx((50 / 200 + 100 / 200) / 2)
    assert fast["reached"] == "2/2" and fast["rare2_recall_mean"] == pytest.approx(0.75)
    assert math.isnan(rows[2]["backprops_to_uniform_acc"]) and rows[2]["reached"] == "0/1"
    assert rows[2]["test_acc_std"] == 0.0


def test_label_noise_is_symmetric_seeded_and_recorded():
    data = load_digits()
    noisy, noise = flip_labels(data, 0.3, seed=5)
    assert noise.flipped.size == round(0.3 * data.y_train.size)
    changed = np.flatnonzero(noisy.y_train != data.y_train)
    assert np.array_equal(changed, noise.flipped) and np.array_equal(noise.clean_labels, data.y_train)
    assert np.array_equal(flip_labels(data, 0.3, seed=5)[1].flipped, noise.flipped)
    assert len(np.unique(noisy.y_train[noise.flipped])) == 10


def test_geometric_imbalance():
    data = load_digits()
    counts = np.bincount(subsample_geometric(data, 0.1, seed=0).y_train, minlength=10)
    full = np.bincount(data.y_train, minlength=10)
    assert counts[0] == full[0] and counts[9] == round(full[9] * 0.1)
    assert np.all(np.diff(counts / full) <= 1e-9)
