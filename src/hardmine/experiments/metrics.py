"""Numbers over runs: the target, reaching it, paired differences against uniform, the noise guard's scores.

The target is uniform's mean validation accuracy over its last epoch, averaged over seeds. A run reaches it at the
first evaluation where the mean of two consecutive validation evaluations is at or above it. Cost to target is
summarised over all seeds, a seed that never reaches it counting as infinite: the median seed decides, and
`reached` says how many seeds did. Test accuracy is compared with uniform's seed by seed (seeds pair the same
initialisation), with a 95% t interval over seeds; an interval that contains 0 is "within noise".
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BASELINE = "uniform"
CONFIDENCE = 0.95
TOLERANCE = 1e-9  # accuracies are ratios of counts: a mean equal to the target up to rounding reaches it


def last_epoch_accuracy(curve: dict[str, list[float]], evals_per_epoch: int) -> float:
    """The mean validation accuracy over the last epoch's `evals_per_epoch` evaluations."""
    values = curve["val_acc"][1:][-evals_per_epoch:]
    return float(np.mean(values)) if values else math.nan


def first_reach(curve: dict[str, list[float]], target: float) -> int | None:
    """The index of the first evaluation i >= 1 whose validation accuracy averaged with evaluation i - 1 is >=
    `target` (up to TOLERANCE), or None when the run never reaches it."""
    val = curve["val_acc"]
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


def summarize(runs: list[dict[str, Any]], strategies: list[str], class_counts: list[int],
              evals_per_epoch: int) -> tuple[dict, dict, list[dict]]:
    """The target, the baseline (uniform's mean totals) and one summary row per strategy.

    Each row: test accuracy and macro-F1 mean and std over seeds (ddof=1); the paired difference of test accuracy
    against uniform (`diff_vs_uniform`, `diff_low`, `diff_high`, `within_noise`); `reached` ("k/n" seeds reaching
    the target); `compute_to_target` (median over seeds of compute at the reach over uniform's mean total compute;
    None when the median seed does not reach it) and `seconds_to_target` (the same, in training seconds);
    `compute_total` (mean total compute over uniform's), `forwards` and `backwards` (mean totals, samples);
    `train_seconds`, `hardmine_seconds` (means) and `hardmine_fraction`; the mean recall of the two rarest training
    classes; per-class recall and slice accuracy means; the noise guard's precision and recall;
    `selected_flipped_share` (with label noise: the mean share of flipped labels among the back-propagated samples)
    and `reference_compute` (a reference model's compute over uniform's mean total, part of `compute_total`).
    """
    base_runs = [r for r in runs if r["strategy"] == BASELINE]
    target_value = _mean([last_epoch_accuracy(r["curve"], evals_per_epoch) for r in base_runs])
    target = {"metric": "accuracy", "value": _finite(target_value), "split": "validation",
              "definition": "uniform's mean validation accuracy over its last epoch, averaged over seeds"}
    baseline = {"compute": _mean([r["compute"] for r in base_runs]),
                "train_seconds": _mean([r["train_seconds"] for r in base_runs]),
                "test_acc": _mean([r["test_acc"] for r in base_runs])}
    base_acc = {r["seed"]: r["test_acc"] for r in base_runs}
    rare = [int(c) for c in np.argsort(np.asarray(class_counts), kind="stable")[:2]]
    rows = []
    for label in strategies:
        mine = [r for r in runs if r["strategy"] == label]
        if not mine:
            continue
        compute, seconds = [], []
        for r in mine:
            i = first_reach(r["curve"], target_value) if math.isfinite(target_value) else None
            compute.append(math.inf if i is None else r["curve"]["compute"][i] / baseline["compute"])
            seconds.append(math.inf if i is None else r["curve"]["seconds"][i])
        paired = [r for r in mine if r["seed"] in base_acc]
        diff, low, high = paired_interval([r["test_acc"] for r in paired], [base_acc[r["seed"]] for r in paired])
        recall = _mean_vectors([r["per_class_recall"] for r in mine])
        reached = sum(math.isfinite(c) for c in compute)
        row = {
            "strategy": label,
            "test_acc_mean": _mean([r["test_acc"] for r in mine]),
            "test_acc_std": _std([r["test_acc"] for r in mine]),
            "macro_f1_mean": _mean([r["macro_f1"] for r in mine]),
            "macro_f1_std": _std([r["macro_f1"] for r in mine]),
            "diff_vs_uniform": diff if label != BASELINE else 0.0,
            "diff_low": low if label != BASELINE else math.nan,
            "diff_high": high if label != BASELINE else math.nan,
            "within_noise": None if label == BASELINE or not math.isfinite(low) else bool(low <= 0.0 <= high),
            "reached": f"{reached}/{len(mine)}",
            "compute_to_target": _finite(median_cost(compute)),
            "compute_total": _mean([r["compute"] for r in mine]) / baseline["compute"],
            "forwards": _mean([r["forwards"] for r in mine]),
            "backwards": _mean([r["backwards"] for r in mine]),
            "seconds_to_target": _finite(median_cost(seconds)),
            "compute_to_target_seeds": [_finite(c) for c in compute],
            "train_seconds": _mean([r["train_seconds"] for r in mine]),
            "hardmine_seconds": _mean([r["hardmine_seconds"] for r in mine]),
            "hardmine_fraction": _mean([r["hardmine_fraction"] for r in mine]),
            "rare2_recall_mean": _mean([recall[c] for c in rare]) if recall else math.nan,
            "noise_precision": _mean([r.get("noise_precision", math.nan) for r in mine]),
            "noise_recall": _mean([r.get("noise_recall", math.nan) for r in mine]),
            "selected_flipped_share": _mean([r["selected_flipped_share"] if r.get("selected_flipped_share")
                                             is not None else math.nan for r in mine]),
            "reference_compute": _mean([r.get("reference_compute", 0) for r in mine]) / baseline["compute"],
            "seeds": len(mine),
            "diverged": sum(r.get("diverged") is not None for r in mine),
            "per_class_recall": recall,
            "slice_acc": _mean_vectors([r["slice_acc"] for r in mine]),
        }
        slices = [r["slice_acc"] for r in mine if r["slice_acc"] is not None]
        row["slice_acc_std"] = [_std(list(column)) for column in zip(*slices)] if slices else None
        rows.append(row)
    baseline["rare_classes"] = rare
    return target, baseline, rows
