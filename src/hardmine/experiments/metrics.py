"""Numbers over runs: the target, reaching it, paired differences against uniform, the noise guard's scores.

The metric (METRICS: accuracy, balanced accuracy or macro-F1) is one for the target and the table. The target is
uniform's mean validation metric over its last epoch, averaged over seeds (uniform at its chosen learning rate). A
run reaches it at the first evaluation where the mean of two consecutive validation evaluations is at or above it.
Cost to target is summarised over all seeds, a seed that never reaches it counting as infinite: the median seed
decides, and `reached` says how many seeds did; it is stated against uniform's own compute to target (a uniform
seed that ends just short of the target counts its whole run). The test metric is compared with uniform's seed by
seed (seeds pair the same initialisation), with a 95% t interval over seeds; an interval that contains 0 is
"within noise".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hardmine._checks import check_choice

BASELINE = "uniform"
CONFIDENCE = 0.95
TOLERANCE = 1e-9  # accuracies are ratios of counts: a mean equal to the target up to rounding reaches it
METRICS = ("accuracy", "balanced_accuracy", "macro_f1")
IMBALANCED_ABOVE = 3.0  # largest / smallest training class count above this: balanced accuracy by default
CHANCE_MARGIN = 0.02  # a run whose test balanced accuracy is within this of 1/C is at chance: collapsed


def check_metric(metric: str) -> str:
    """`metric` when it is one of METRICS; ValueError naming --metric otherwise."""
    check_choice("--metric", metric, METRICS)
    return metric


def default_metric(class_counts: list[int]) -> tuple[str, str]:
    """(metric, why): balanced accuracy when the training classes' largest / smallest count ratio exceeds
    IMBALANCED_ABOVE, else accuracy."""
    present = [c for c in class_counts if c > 0]
    ratio = max(present) / min(present) if present else 1.0
    if ratio > IMBALANCED_ABOVE:
        return "balanced_accuracy", (f"metric balanced_accuracy: the training classes' largest/smallest count ratio "
                                     f"is {ratio:.1f} (> {IMBALANCED_ABOVE:g}); --metric to choose another")
    return "accuracy", (f"metric accuracy: the training classes' largest/smallest count ratio is {ratio:.1f} "
                        f"(<= {IMBALANCED_ABOVE:g}); --metric to choose another")


def curve_key(split: str, metric: str) -> str:
    """The key of `metric` on `split` ("val" or "test") in a run's curve and record: "val_acc", "test_macro_f1"..."""
    return f"{split}_acc" if metric == "accuracy" else f"{split}_{metric}"


def scores(pred: np.ndarray, y: np.ndarray, num_classes: int) -> dict[str, float]:
    """Every metric of METRICS for predictions `pred` [M] against labels `y` [M] (balanced accuracy: the mean
    recall of the classes present in `y`)."""
    from hardmine.diagnostics.evaluation import macro_f1, per_class_recall

    recall = per_class_recall(pred, y, num_classes)
    return {"accuracy": float((pred == y).mean()), "balanced_accuracy": float(np.nanmean(recall)),
            "macro_f1": macro_f1(pred, y, num_classes)}


def is_collapsed(pred: np.ndarray, y: np.ndarray, num_classes: int) -> bool:
    """True when the predictions `pred` [M] are all one class, or their balanced accuracy is within
    CHANCE_MARGIN of chance (1 / num_classes)."""
    if np.unique(pred).size <= 1:
        return True
    return scores(pred, y, num_classes)["balanced_accuracy"] <= 1.0 / num_classes + CHANCE_MARGIN


def last_epoch_accuracy(curve: dict[str, list[float]], evals_per_epoch: int, key: str = "val_acc") -> float:
    """The mean of curve[key] (validation accuracy by default) over the last epoch's `evals_per_epoch`
    evaluations."""
    values = curve[key][1:][-evals_per_epoch:]
    return float(np.mean(values)) if values else math.nan


def first_reach(curve: dict[str, list[float]], target: float, key: str = "val_acc") -> int | None:
    """The index of the first evaluation i >= 1 whose curve[key] (validation accuracy by default) averaged with
    evaluation i - 1 is >= `target` (up to TOLERANCE), or None when the run never reaches it."""
    val = curve[key]
    for i in range(1, len(val)):
        if (val[i - 1] + val[i]) / 2 >= target - TOLERANCE:
            return i
    return None


def paired_interval(values: list[float], baseline: list[float]) -> tuple[float, float, float]:
    """Mean of the paired differences values[s] - baseline[s] over seeds and its 95% t interval (low, high);
    the interval is (nan, nan) with fewer than two pairs."""
    from scipy import stats

    diff = np.asarray(values, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diff.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(diff.mean())
    if diff.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, diff.size - 1) * diff.std(ddof=1) / math.sqrt(diff.size))
    return mean, mean - half, mean + half


def median_cost(costs: list[float]) -> float:
    """The median over seeds, not-reached seeds counting as +inf; inf when the median seed did not reach it."""
    return float(np.median(np.asarray(costs, dtype=np.float64))) if costs else math.inf


def noise_scores(suspects: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    """Precision (flipped among the suspects) and recall (suspected among the flipped) of a noise guard."""
    hits = np.intersect1d(suspects, flipped).size
    return {"noise_precision": hits / suspects.size if suspects.size else math.nan,
            "noise_recall": hits / flipped.size if flipped.size else math.nan}


def _mean(values: list[float]) -> float:
    """Mean of the values, nan when any is missing (no average over the runs that happened to succeed)."""
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return math.nan
    return float(np.mean(values))


def _std(values: list[float]) -> float:
    if not values or any(v is None or not math.isfinite(v) for v in values):
        return math.nan
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _mean_vectors(vectors: list[list[float] | None]) -> list[float] | None:
    if not vectors or any(v is None for v in vectors):
        return None
    return [_mean(list(column)) for column in zip(*vectors)]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def metric_value(record: dict[str, Any], metric: str) -> float:
    """A run's final test value of `metric` (test accuracy, balanced accuracy or macro-F1)."""
    if metric == "macro_f1":
        return record["macro_f1"]
    value = record.get(curve_key("test", metric))
    return math.nan if value is None else value


def _own_cost(runs: list[dict[str, Any]], target: float, key: str, column: str) -> float:
    """Uniform's own cost to the target: the median over its seeds of curve[column] at the reach, a seed that
    never reaches it counting its whole run (it ends just short: the target is the seeds' mean)."""
    costs = []
    for r in runs:
        i = first_reach(r["curve"], target, key) if math.isfinite(target) else None
        costs.append(r["curve"][column][-1 if i is None else i])
    return float(np.median(costs)) if costs else math.nan


def _ratio(value: float, base: float) -> float | None:
    return value / base if math.isfinite(value) and math.isfinite(base) and base > 0 else None


def summarize(runs: list[dict[str, Any]], strategies: list[str], class_counts: list[int], evals_per_epoch: int,
              metric: str = "accuracy", tuning_runs: list[dict[str, Any]] | None = None) -> tuple[dict, dict,
                                                                                                   list[dict]]:
    """The target, the baseline (uniform's mean totals and own cost to target) and one summary row per strategy.

    `runs` are the judged runs (each strategy at its chosen learning rate), `tuning_runs` the tuning runs at the
    other rates (their compute is `tuning_compute`, apart). Each row: `metric_mean` / `metric_std` (the test
    `metric` over seeds, ddof=1) and test accuracy and macro-F1 mean and std; the paired difference of the test
    metric against uniform (`diff_vs_uniform`, `diff_low`, `diff_high`, `within_noise`); `reached` ("k/n" seeds
    reaching the target); `compute_to_target` (median over seeds of compute at the reach over uniform's mean total
    compute; None when the median seed does not reach it), `compute_vs_uniform` (the same median over uniform's
    own compute to target), `seconds_to_target` (training seconds) and `seconds_vs_uniform`; `compute_total`
    (mean total compute over uniform's), `forwards` and `backwards` (mean totals, samples); `train_seconds`,
    `hardmine_seconds` (means) and `hardmine_fraction`; `lr` and `lr_factor` (the rate the runs used);
    `tuning_compute` (the tuning runs' compute over uniform's mean total); `collapsed` and `diverged` (seeds); the
    mean recall of the two rarest training classes; per-class recall and slice accuracy means; the noise guard's
    precision and recall; `selected_flipped_share` (with label noise: the mean share of flipped labels among the
    back-propagated samples) and `reference_compute` (a reference model's compute over uniform's mean total, part
    of `compute_total`).
    """
    key = curve_key("val", check_metric(metric))
    base_runs = [r for r in runs if r["strategy"] == BASELINE]
    target_value = _mean([last_epoch_accuracy(r["curve"], evals_per_epoch, key) for r in base_runs])
    name = metric.replace("_", " ")
    target = {"metric": metric, "value": _finite(target_value), "split": "validation",
              "definition": f"uniform's mean validation {name} over its last epoch, averaged over seeds"}
    baseline = {"compute": _mean([r["compute"] for r in base_runs]),
                "train_seconds": _mean([r["train_seconds"] for r in base_runs]),
                "test_acc": _mean([r["test_acc"] for r in base_runs]),
                "metric": _mean([metric_value(r, metric) for r in base_runs]),
                "compute_to_target": _own_cost(base_runs, target_value, key, "compute"),
                "seconds_to_target": _own_cost(base_runs, target_value, key, "seconds")}
    baseline["compute_to_target_share"] = _ratio(baseline["compute_to_target"], baseline["compute"])
    base_value = {r["seed"]: metric_value(r, metric) for r in base_runs}
    rare = [int(c) for c in np.argsort(np.asarray(class_counts), kind="stable")[:2]]
    rows = []
    for label in strategies:
        mine = [r for r in runs if r["strategy"] == label]
        if not mine:
            continue
        compute, seconds = [], []
        for r in mine:
            i = first_reach(r["curve"], target_value, key) if math.isfinite(target_value) else None
            compute.append(math.inf if i is None else r["curve"]["compute"][i])
            seconds.append(math.inf if i is None else r["curve"]["seconds"][i])
        paired = [r for r in mine if r["seed"] in base_value]
        diff, low, high = paired_interval([metric_value(r, metric) for r in paired],
                                          [base_value[r["seed"]] for r in paired])
        recall = _mean_vectors([r["per_class_recall"] for r in mine])
        reached = sum(math.isfinite(c) for c in compute)
        tuning = [r for r in tuning_runs or [] if r["strategy"] == label]
        row = {
            "strategy": label,
            "lr": mine[0].get("lr"),
            "lr_factor": mine[0].get("lr_factor"),
            "metric_mean": _mean([metric_value(r, metric) for r in mine]),
            "metric_std": _std([metric_value(r, metric) for r in mine]),
            "test_acc_mean": _mean([r["test_acc"] for r in mine]),
            "test_acc_std": _std([r["test_acc"] for r in mine]),
            "macro_f1_mean": _mean([r["macro_f1"] for r in mine]),
            "macro_f1_std": _std([r["macro_f1"] for r in mine]),
            "diff_vs_uniform": diff if label != BASELINE else 0.0,
            "diff_low": low if label != BASELINE else math.nan,
            "diff_high": high if label != BASELINE else math.nan,
            "within_noise": None if label == BASELINE or not math.isfinite(low) else bool(low <= 0.0 <= high),
            "reached": f"{reached}/{len(mine)}",
            "compute_to_target": _finite(median_cost(compute) / baseline["compute"]),
            # uniform's own row is its own yardstick: 1 by definition (its cost to target counts a seed that ends just
            # short of the seeds' mean as its whole run, where every other strategy's counts it as never reaching)
            "compute_vs_uniform": 1.0 if label == BASELINE else _ratio(median_cost(compute),
                                                                         baseline["compute_to_target"]),
            "compute_total": _mean([r["compute"] for r in mine]) / baseline["compute"],
            "forwards": _mean([r["forwards"] for r in mine]),
            "backwards": _mean([r["backwards"] for r in mine]),
            "seconds_to_target": _finite(median_cost(seconds)),
            "seconds_vs_uniform": 1.0 if label == BASELINE else _ratio(median_cost(seconds),
                                                                         baseline["seconds_to_target"]),
            "compute_to_target_seeds": [_finite(c / baseline["compute"]) for c in compute],
            "train_seconds": _mean([r["train_seconds"] for r in mine]),
            "hardmine_seconds": _mean([r["hardmine_seconds"] for r in mine]),
            "hardmine_fraction": _mean([r["hardmine_fraction"] for r in mine]),
            "tuning_compute": sum(r["compute"] for r in tuning) / baseline["compute"],
            "rare2_recall_mean": _mean([recall[c] for c in rare]) if recall else math.nan,
            "noise_precision": _mean([r.get("noise_precision", math.nan) for r in mine]),
            "noise_recall": _mean([r.get("noise_recall", math.nan) for r in mine]),
            "selected_flipped_share": _mean([r["selected_flipped_share"] if r.get("selected_flipped_share")
                                             is not None else math.nan for r in mine]),
            "reference_compute": _mean([r.get("reference_compute", 0) for r in mine]) / baseline["compute"],
            "seeds": len(mine),
            "collapsed": sum(bool(r.get("collapsed")) for r in mine),
            "diverged": sum(r.get("diverged") is not None for r in mine),
            "per_class_recall": recall,
            "slice_acc": _mean_vectors([r["slice_acc"] for r in mine]),
        }
        slices = [r["slice_acc"] for r in mine if r["slice_acc"] is not None]
        row["slice_acc_std"] = [_std(list(column)) for column in zip(*slices)] if slices else None
        rows.append(row)
    baseline["rare_classes"] = rare
    return target, baseline, rows
