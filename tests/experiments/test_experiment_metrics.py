"""The target, reaching it over all seeds, paired intervals against uniform, noise scores and data corruptions."""

import math

import numpy as np
import pytest
from scipy import stats

from hardmine.datasets.digits import load_digits
from hardmine.experiments.data import (
    flip_labels,
    noise_seed,
    split_validation,
    subsample_geometric,
)
from hardmine.experiments.metrics import (
    check_metric,
    default_metric,
    first_reach,
    is_collapsed,
    last_epoch_accuracy,
    noise_scores,
    paired_interval,
    scores,
    summarize,
)
from hardmine.experiments.report import rich_table
from hardmine.experiments.verdict import findings


def run(strategy, seed, val, compute, test_acc, recall=(0.5, 1.0, 1.0)):
    curve = {"epoch": list(range(len(val))), "compute": compute, "seconds": [c / 100 for c in compute],
             "val_acc": val, "test_acc": val}
    return {"strategy": strategy, "seed": seed, "test_acc": test_acc, "macro_f1": 0.5, "per_class_recall": list(recall),
            "slice_acc": [1.0, 0.9, 0.8, 0.7, 0.6], "curve": curve, "compute": compute[-1], "forwards": compute[-1],
            "backwards": 0, "train_seconds": compute[-1] / 100, "hardmine_seconds": 0.1, "hardmine_fraction": 0.02}


def test_first_reach_needs_two_consecutive_evaluations_on_average():
    curve = {"val_acc": [0.1, 0.9, 0.5, 0.8, 0.85]}
    assert first_reach(curve, 0.8) == 4  # (0.1+0.9)/2, (0.9+0.5)/2, (0.5+0.8)/2 fall short; (0.8+0.85)/2 does not
    assert first_reach(curve, 0.5) == 1
    assert first_reach(curve, 0.9) is None
    assert last_epoch_accuracy({"val_acc": [0.0, 0.5, 0.6, 0.7, 0.8]}, 2) == pytest.approx(0.75)


def test_paired_interval_against_a_hand_computation():
    a, u = [0.80, 0.83, 0.81], [0.79, 0.80, 0.80]
    d = np.array([0.01, 0.03, 0.01])
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    mean, low, high = paired_interval(a, u)
    assert mean == pytest.approx(d.mean()) and low == pytest.approx(d.mean() - half)
    assert high == pytest.approx(d.mean() + half)
    assert half == pytest.approx(4.303 * 0.011547 / 1.732, rel=1e-3)  # t(0.975, 2) = 4.303
    one = paired_interval([0.8], [0.7])
    assert one[0] == pytest.approx(0.1) and math.isnan(one[1]) and math.isnan(one[2])


def synthetic():
    grid = [0, 100, 200, 300]
    runs = [run("uniform", s, [0.1, 0.7, 0.80, 0.80], grid, acc) for s, acc in zip(range(3), (0.80, 0.81, 0.79))]
    # "lucky" reaches the target in seed 0 only, very early: its median seed does not reach it
    runs += [run("lucky", 0, [0.1, 0.85, 0.85, 0.85], [0, 10, 20, 30], 0.85),
             run("lucky", 1, [0.1, 0.6, 0.6, 0.6], [0, 10, 20, 30], 0.70),
             run("lucky", 2, [0.1, 0.6, 0.7, 0.7], [0, 10, 20, 30], 0.72)]
    runs += [run("steady", s, [0.1, 0.8, 0.81, 0.82], [0, 50, 100, 150], acc)
             for s, acc in zip(range(3), (0.82, 0.83, 0.81))]
    return runs


def test_a_strategy_reaching_in_one_of_three_seeds_is_not_reached():
    target, baseline, rows = summarize(synthetic(), ["uniform", "lucky", "steady"], [3, 50, 40], evals_per_epoch=2)
    assert target["value"] == pytest.approx(0.80) and target["split"] == "validation"
    uniform, lucky, steady = rows
    assert lucky["reached"] == "1/3" and lucky["compute_to_target"] is None and lucky["seconds_to_target"] is None
    assert lucky["compute_to_target_seeds"][0] == pytest.approx(20 / 300)  # seed 0 did reach it, early
    assert steady["reached"] == "3/3" and steady["compute_to_target"] == pytest.approx(100 / 300)
    assert uniform["compute_to_target"] == pytest.approx(300 / 300) and uniform["reached"] == "3/3"
    assert steady["compute_total"] == pytest.approx(0.5) and baseline["compute"] == 300
    assert steady["diff_vs_uniform"] == pytest.approx(0.02) and steady["within_noise"] is False
    assert lucky["within_noise"] is True  # -0.0767 with a wide interval
    results = {"summary": rows, "seeds": [0, 1, 2], "target": target,
               "dataset": {"name": "x", "n_train": 9, "n_val": 3, "n_test": 3, "flipped": None},
               "config": {"model": "mlp", "optimizer": "sgd", "lr": 0.1, "schedule": "cosine", "epochs": 3,
                          "batch_size": 4}}
    table = rich_table(results)
    cells = {c.header: [str(cell) for cell in c._cells] for c in table.columns}
    assert cells["compute to target"] == ["1.00x", "not reached", "0.33x"]  # over uniform's own: 300 here
    words = " ".join(findings(results))
    assert "over uniform's own: steady 0.33x (3/3 seeds)." in words and "lucky" not in words.split("Within")[0]
    assert "steady ends 2.00 points above uniform" in words
    assert "Within noise of uniform's test accuracy: lucky" in words


def test_a_missing_number_is_not_averaged_away():
    runs = synthetic()
    runs[3]["test_acc"] = float("nan")
    _, _, rows = summarize(runs, ["uniform", "lucky"], [3, 50, 40], evals_per_epoch=2)
    assert math.isnan(rows[1]["test_acc_mean"])


def test_noise_scores():
    assert noise_scores(np.array([1, 2, 3, 4]), np.array([2, 4, 6, 8, 10])) == {"noise_precision": 0.5,
                                                                                "noise_recall": 0.4}


def test_label_noise_is_symmetric_seeded_and_drawn_per_seed():
    data = load_digits()
    noisy, noise = flip_labels(data, 0.3, seed=5)
    assert noise.flipped.size == round(0.3 * data.y_train.size)
    changed = np.flatnonzero(noisy.y_train != data.y_train)
    assert np.array_equal(changed, noise.flipped) and np.array_equal(noise.clean_labels, data.y_train)
    assert np.array_equal(flip_labels(data, 0.3, seed=5)[1].flipped, noise.flipped)
    assert len(np.unique(noisy.y_train[noise.flipped])) == 10
    per_seed = {noise_seed("per-seed", 0, s) for s in range(3)}
    assert len(per_seed) == 3 and {noise_seed("fixed", 0, s) for s in range(3)} == {0}
    with pytest.raises(ValueError, match="--noise-seed must be one of"):
        noise_seed("random", 0, 0)


def test_validation_split_is_stratified_and_refuses_zero():
    data = load_digits()
    splits = split_validation(data, 0.1, seed=0)
    counts = np.bincount(splits.y_val, minlength=10)
    assert np.all(np.abs(counts - 0.1 * np.bincount(data.y_train)) <= 1)
    assert splits.train.y_train.size + splits.y_val.size == data.y_train.size
    assert np.array_equal(splits.train.y_test, data.y_test)  # the test part is untouched
    for bad in (0, 0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="--validation must be in"):
            split_validation(data, bad, seed=0)
    tiny = subsample_geometric(data, 0.001, seed=0)  # the last class keeps 1 training sample
    with pytest.raises(ValueError, match="fewer than 2 training samples"):
        split_validation(tiny, 0.1, seed=0)


def test_geometric_imbalance():
    data = load_digits()
    counts = np.bincount(subsample_geometric(data, 0.1, seed=0).y_train, minlength=10)
    full = np.bincount(data.y_train, minlength=10)
    assert counts[0] == full[0] and counts[9] == round(full[9] * 0.1)
    assert np.all(np.diff(counts / full) <= 1e-9)


def test_the_default_metric_switches_on_imbalance():
    assert default_metric([30, 10])[0] == "accuracy"  # a ratio of 3 is not above 3
    metric, why = default_metric([31, 10, 20])
    assert metric == "balanced_accuracy" and "ratio is 3.1 (> 3)" in why
    assert default_metric([50, 0, 50])[0] == "accuracy"  # an absent class is not a count of 0 to divide by
    with pytest.raises(ValueError, match="--metric must be one of"):
        check_metric("auc")


def test_a_collapsed_model_is_flagged():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    assert is_collapsed(np.zeros(10, dtype=np.int64), y, 3)  # one class
    assert is_collapsed(np.array([1, 0, 1, 2, 2, 0, 1, 2, 0, 1]), y, 3)  # balanced accuracy 1/3: chance
    assert not is_collapsed(y.copy(), y, 3)
    values = scores(np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 1]), y, 3)
    assert values["accuracy"] == pytest.approx(0.9) and values["balanced_accuracy"] == pytest.approx((0.75 + 1 + 1) / 3)


def test_summarize_targets_the_chosen_metric():
    runs = synthetic()
    for r in runs:  # balanced accuracy a tenth below accuracy everywhere
        r["curve"]["val_balanced_accuracy"] = [v - 0.1 for v in r["curve"]["val_acc"]]
        r["test_balanced_accuracy"] = r["test_acc"] - 0.1
    runs[-1]["collapsed"] = True
    target, baseline, rows = summarize(runs, ["uniform", "lucky", "steady"], [3, 50, 40], 2, "balanced_accuracy")
    assert target["metric"] == "balanced_accuracy" and target["value"] == pytest.approx(0.70)
    assert rows[2]["metric_mean"] == pytest.approx(0.72) and rows[2]["test_acc_mean"] == pytest.approx(0.82)
    assert rows[2]["collapsed"] == 1 and rows[0]["collapsed"] == 0
    assert baseline["compute_to_target"] == 300 and rows[2]["compute_vs_uniform"] == pytest.approx(1 / 3)


def test_compute_to_target_is_stated_against_uniforms_own():
    runs = synthetic()
    for r in runs[:3]:  # the target is 0.85; uniform reaches it at 200 of its 300 in every seed
        r["curve"]["val_acc"] = [0.1, 0.8, 0.9, 0.8]
    for r in runs[6:]:  # steady at 100
        r["curve"]["val_acc"] = [0.1, 0.9, 0.9, 0.9]
    _, baseline, rows = summarize(runs, ["uniform", "lucky", "steady"], [3, 50, 40], 2)
    assert baseline["compute_to_target"] == 200 and baseline["compute_to_target_share"] == pytest.approx(2 / 3)
    assert rows[0]["compute_vs_uniform"] == pytest.approx(1.0)
    assert rows[2]["compute_to_target"] == pytest.approx(100 / 300) and rows[2]["compute_vs_uniform"] == 0.5


def test_uniforms_row_is_its_own_yardstick_when_a_seed_ends_short_of_the_mean():
    runs = synthetic()
    for r, values, seconds in zip(runs[:3], ([0.1, 0.8, 0.9, 0.9], [0.1, 0.7, 0.8, 0.8], [0.1, 0.9, 0.9, 0.9]),
                                  ([0, 5, 9, 13], [0, 4, 8, 12], [0, 30, 60, 90])):
        r["curve"]["val_acc"], r["curve"]["seconds"] = values, seconds  # seed 1 ends below the seeds' mean
    _, baseline, rows = summarize(runs, ["uniform", "lucky", "steady"], [3, 50, 40], 2)
    assert rows[0]["reached"] == "2/3"
    assert rows[0]["compute_vs_uniform"] == 1.0 and rows[0]["seconds_vs_uniform"] == 1.0
    assert baseline["seconds_to_target"] == 13  # median of 13, 12 (the short seed: its whole run) and 60
