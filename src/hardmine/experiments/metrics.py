"""Numbers over runs: reaching uniform's accuracy, the noise guard's precision and recall, means over seeds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BASELINE = "uniform"


def first_reach(curve: dict[str, list[float]], target: float) -> tuple[float, float]:
    """(backprops, seconds) at the first evaluation after the start whose test accuracy is >= `target`;
    (nan, nan) when the run never reaches it."""
    for acc, backprops, seconds in zip(curve["test_acc"][1:], curve["backprops"][1:], curve["seconds"][1:]):
        if acc >= target:
            return float(backprops), float(seconds)
    return math.nan, math.nan


def noise_scores(suspects: np.ndarray, flipped: np.ndarray) -> dict[str, float]:
    """Precision (flipped among the suspects) and recall (suspected among the flipped) of a noise guard."""
    hits = np.intersect1d(suspects, flipped).size
    return {"noise_precision": hits / suspects.size if suspects.size else math.nan,
            "noise_recall": hits / flipped.size if flipped.size else math.nan}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _std(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else (0.0 if finite else math.nan)


def _mean_vectors(vectors: list[list[float] | None]) -> list[float] | None:
    present = [v for v in vectors if v is not None]
    if not present:
        return None
    return [_mean(list(column)) for column in zip(*present)]


def summarize(runs: list[dict[str, Any]], strategies: list[str], class_counts: list[int]) -> tuple[dict, list[dict]]:
    """The baseline (uniform's mean final accuracy, backprops and seconds) and one summary row per strategy.

    Each row: test_acc/macro_f1 mean and std over seeds (std with ddof=1), the mean recall of the two rarest
    training classes, per-class recall and slice accuracy means, the mean over seeds of backprops and seconds to
    reach uniform's final accuracy as a ratio of uniform's totals (over the seeds that reached it; `reached`
    says how many did), hardmine's share of the training time, and the noise guard's precision and recall.
    """
    base_runs = [r for r in runs if r["strategy"] == BASELINE]
    baseline = {
        "test_acc": _mean([r["test_acc"] for r in base_runs]),
        "backprops": _mean([r["backprops"] for r in base_runs]),
        "train_seconds": _mean([r["train_seconds"] for r in base_runs]),
    }
    rare = [int(c) for c in np.argsort(np.asarray(class_counts), kind="stable")[:2]]
    rows = []
    for label in strategies:
        mine = [r for r in runs if r["strategy"] == label]
        if not mine:
            continue
        reach = [first_reach(r["curve"], baseline["test_acc"]) for r in mine]
        recall = _mean_vectors([r["per_class_recall"] for r in mine])
        row = {
            "strategy": label,
            "test_acc_mean": _mean([r["test_acc"] for r in mine]),
            "test_acc_std": _std([r["test_acc"] for r in mine]),
            "macro_f1_mean": _mean([r["macro_f1"] for r in mine]),
            "macro_f1_std": _std([r["macro_f1"] for r in mine]),
            "rare2_recall_mean": _mean([recall[c] for c in rare]) if recall else math.nan,
            "backprops_to_uniform_acc": _mean([b / baseline["backprops"] for b, _ in reach]),
            "time_to_uniform_acc": _mean([s / baseline["train_seconds"] for _, s in reach]),
            "reached": f"{sum(math.isfinite(b) for b, _ in reach)}/{len(mine)}",
            "backprops_total": _mean([r["backprops"] for r in mine]) / baseline["backprops"],
            "hardmine_fraction": _mean([r["hardmine_fraction"] for r in mine]),
            "noise_precision": _mean([r.get("noise_precision", math.nan) for r in mine]),
            "noise_recall": _mean([r.get("noise_recall", math.nan) for r in mine]),
            "seeds": len(mine),
            "diverged": sum(r.get("diverged") is not None for r in mine),
            "per_class_recall": recall,
            "slice_acc": _mean_vectors([r["slice_acc"] for r in mine]),
        }
        slices = [r["slice_acc"] for r in mine if r["slice_acc"] is not None]
        row["slice_acc_std"] = [_std(list(column)) for column in zip(*slices)] if slices else None
        rows.append(row)
    baseline["rare_classes"] = rare
    return baseline, rows
