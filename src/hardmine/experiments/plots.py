"""The PNG plots of a comparison, drawn from results.json (and the runs' per-sample arrays for cartography).

accuracy.png: test accuracy against backprops (in passes over the training set) and against training seconds,
the mean over seeds with a band from the lowest to the highest seed; per_class_recall.png: bars, rarest class
first; slice_accuracy.png: accuracy on the reference model's loss quintiles, easy to hard; cartography.png:
confidence against variability of the training samples, flipped labels in red.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hardmine.atomic import write_bytes
from hardmine.diagnostics.cartography import plot_cartography
from hardmine.diagnostics.evaluation import SLICE_NAMES
from hardmine.experiments.metrics import BASELINE

PLOTS = ("accuracy.png", "per_class_recall.png", "slice_accuracy.png", "cartography.png")


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes(path, buffer.getvalue())


def _colors(labels: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _band(runs: list[dict], key: str, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grid, mean, low, high of test accuracy over seeds against curve[key] / scale (interpolated, no extrapolation)."""
    ends = [r["curve"][key][-1] / scale for r in runs]
    grid = np.linspace(0.0, min(ends), 200)
    curves = np.array([np.interp(grid, np.asarray(r["curve"][key]) / scale, r["curve"]["test_acc"]) for r in runs])
    return grid, curves.mean(0), curves.min(0), curves.max(0)


def plot_accuracy(results: dict[str, Any], path: Path) -> None:
    """Test accuracy against backprops and against training seconds, per strategy, with seed bands."""
    labels = [row["strategy"] for row in results["summary"]]
    colors = _colors(labels)
    n_train = results["dataset"]["n_train"]
    target = results["baseline"]["test_acc"]
    fig = Figure(figsize=(12, 4.6))
    axes = fig.subplots(1, 2, sharey=True)
    finals = []
    for label in labels:
        runs = [r for r in results["runs"] if r["strategy"] == label]
        finals += [r["test_acc"] for r in runs]
        for ax, key, scale in ((axes[0], "backprops", n_train), (axes[1], "seconds", 1.0)):
            grid, mean, low, high = _band(runs, key, scale)
            ax.plot(grid, mean, color=colors[label], lw=1.6, label=label)
            ax.fill_between(grid, low, high, color=colors[label], alpha=0.18, lw=0)
    for ax in axes:
        ax.axhline(target, color="black", ls="--", lw=0.8)
        ax.grid(alpha=0.3)
    axes[0].annotate(f"uniform's final accuracy {target:.3f}", (0.0, target), xytext=(2, 3),
                     textcoords="offset points", fontsize=8)
    low = min(finals + [target]) - 0.08
    axes[0].set_ylim(max(0.0, low), min(1.0, max(finals + [target]) + 0.02))
    axes[0].set_xlabel("backprops (passes over the training set)")
    axes[1].set_xlabel("training time (s)")
    axes[0].set_ylabel("test accuracy")
    axes[0].legend(fontsize=8, loc="lower right")
    seeds = len(results["seeds"])
    fig.suptitle(f"{results['dataset']['name']}: test accuracy, mean of {seeds} seed(s), band = min..max", fontsize=11)
    _save(fig, path)


def _grouped_bars(ax: Any, groups: list[str], series: dict[str, list[float]], colors: dict[str, Any],
                  errors: dict[str, list[float]] | None = None) -> None:
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        values = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        err = None
        if errors and errors.get(label) is not None:
            err = np.array([0.0 if v is None else v for v in errors[label]], dtype=np.float64)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, color=colors[label], label=label, yerr=err,
               error_kw={"lw": 0.7})
    ax.set_xticks(x, groups, fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def plot_per_class_recall(results: dict[str, Any], path: Path) -> None:
    """Per-class recall bars, classes ordered from the rarest (in training) to the most frequent."""
    labels = [row["strategy"] for row in results["summary"]]
    counts = np.asarray(results["dataset"]["class_counts_train"])
    order = np.argsort(counts, kind="stable")
    classes = results["dataset"]["classes"]
    groups = [f"{classes[c]}\n(n={counts[c]})" for c in order]
    series = {row["strategy"]: [row["per_class_recall"][c] for c in order] for row in results["summary"]}
    fig = Figure(figsize=(max(7.0, 0.9 * len(groups) * max(1, len(labels) / 4)), 4.2))
    ax = fig.subplots()
    _grouped_bars(ax, groups, series, _colors(labels))
    ax.set_ylabel("test recall (mean over seeds)")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{results['dataset']['name']}: recall per class, rarest first (n = training samples)", fontsize=10)
    ax.legend(fontsize=7, ncol=min(len(labels), 4), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    _save(fig, path)


def plot_slice_accuracy(results: dict[str, Any], path: Path) -> None:
    """Accuracy on the test slices of the reference model's loss quintiles, easy to hard, with seed std bars."""
    labels = [row["strategy"] for row in results["summary"]]
    series = {row["strategy"]: row["slice_acc"] for row in results["summary"]}
    errors = {row["strategy"]: row["slice_acc_std"] for row in results["summary"]}
    fig = Figure(figsize=(8, 4.2))
    ax = fig.subplots()
    _grouped_bars(ax, list(SLICE_NAMES), series, _colors(labels), errors)
    ax.set_ylabel("test accuracy within the slice")
    ax.set_ylim(0, 1.05)
    ax.set_title("accuracy by difficulty: quintiles of a uniformly trained reference model's test loss", fontsize=10)
    ax.legend(fontsize=7, ncol=min(len(labels), 4), loc="upper center", bbox_to_anchor=(0.5, -0.08))
    _save(fig, path)


def cartography_runs(results: dict[str, Any]) -> list[str]:
    """The strategies mapped: uniform, and the first guarded strategy (else the first other one)."""
    labels = [row["strategy"] for row in results["summary"]]
    others = [label for label in labels if label != BASELINE]
    guarded = [label for label in others if "noise_guard" in label]
    chosen = [BASELINE] if BASELINE in labels else []
    if guarded or others:
        chosen.append((guarded or others)[0])
    return chosen


def plot_cartography_map(results: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]],
                         flipped: np.ndarray | None, path: Path) -> None:
    """Cartography maps of the first seed's run of each strategy in `arrays` (label -> that run's arrays)."""
    n = results["dataset"]["n_train"]
    flip = None
    if flipped is not None:
        flip = np.zeros(n, dtype=bool)
        flip[flipped] = True
    fig = Figure(figsize=(5.2 * max(len(arrays), 1), 4.6))
    axes = np.atleast_1d(fig.subplots(1, max(len(arrays), 1)))
    for ax, (label, run) in zip(axes, arrays.items()):
        suspects = None
        if "suspects" in run:
            suspects = np.zeros(n, dtype=bool)
            suspects[run["suspects"]] = True
        plot_cartography(ax, run["confidence"], run["variability"], flip, suspects,
                         title=f"{label} (seed {results['seeds'][0]})")
    _save(fig, path)


def plot_all(results: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]], flipped: np.ndarray | None,
             out: Path) -> list[Path]:
    """Every plot of PLOTS into `out`; returns their paths."""
    out = Path(out)
    plot_accuracy(results, out / PLOTS[0])
    plot_per_class_recall(results, out / PLOTS[1])
    plot_slice_accuracy(results, out / PLOTS[2])
    plot_cartography_map(results, arrays, flipped, out / PLOTS[3])
    return [out / name for name in PLOTS]
