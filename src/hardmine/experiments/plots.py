"""The PNG plots of a comparison, drawn from results.json (and the runs' per-sample arrays for cartography).

accuracy.png: validation and test accuracy against compute (in uniform epochs: forwards + 2 x backwards over 3N),
the mean over seeds with a band from the lowest to the highest seed, the target and each seed's reach marked;
accuracy_time.png: test accuracy against training seconds; per_class_recall.png: bars, rarest class first, on an axis
that starts near the lowest recall; slice_accuracy.png: accuracy on the reference model's loss quintiles, only the
slices where the strategies separate (not written when none does); cartography.png: confidence against variability
of the training samples, one small map per strategy, flipped labels in red.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from hardmine.atomic import write_bytes
from hardmine.diagnostics.cartography import plot_cartography
from hardmine.diagnostics.evaluation import SLICE_NAMES
from hardmine.experiments.metrics import curve_key, first_reach

PLOTS = ("accuracy.png", "accuracy_time.png", "per_class_recall.png", "slice_accuracy.png", "cartography.png")


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    write_bytes(path, buffer.getvalue())


def _colors(labels: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: cmap(i % cmap.N) for i, label in enumerate(labels)}


def _band(runs: list[dict], key: str, scale: float, metric: str) -> tuple[np.ndarray, ...]:
    """Grid, mean, low, high of `metric` over seeds against curve[key] / scale (interpolated, no extrapolation)."""
    ends = [r["curve"][key][-1] / scale for r in runs]
    grid = np.linspace(0.0, min(ends), 200)
    curves = np.array([np.interp(grid, np.asarray(r["curve"][key]) / scale, _values(r["curve"][metric]))
                       for r in runs])
    return grid, curves.mean(0), curves.min(0), curves.max(0)


def _values(values: list[float | None]) -> np.ndarray:
    """A curve as float64, missing points (null in results.json) as nan."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _has_curve(runs: list[dict], metric: str) -> bool:
    """True when every run evaluated `metric` at every point (False for a run made without a test curve)."""
    return all(np.isfinite(_values(r["curve"][metric])).all() for r in runs)


def _ylim(ax: Any, values: list[float]) -> None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if finite:
        low, high = min(finite), max(finite)
        pad = max(0.01, 0.15 * (high - low))
        ax.set_ylim(max(0.0, low - pad), min(1.0, high + pad))


def plot_accuracy(results: dict[str, Any], path: Path) -> None:
    """Validation and test values of the target metric (accuracy by default) against compute, per strategy, with
    seed bands, the target and the reaches."""
    chosen = results["target"].get("metric", "accuracy")
    val_key, test_key = curve_key("val", chosen), curve_key("test", chosen)
    name_of = chosen.replace("_", " ")
    labels = [row["strategy"] for row in results["summary"]]
    colors = _colors(labels)
    epoch = 3.0 * results["dataset"]["n_train"]
    target = results["target"]["value"]
    fig = Figure(figsize=(12, 4.6))
    axes = fig.subplots(1, 2)
    shown: dict[str, list[float]] = {val_key: [], test_key: []}
    for label in labels:
        runs = [r for r in results["runs"] if r["strategy"] == label]
        for ax, metric in ((axes[0], val_key), (axes[1], test_key)):
            if not _has_curve(runs, metric):  # the test set was evaluated at the end only: one point per seed
                ends = [(r["compute"] / epoch, r["curve"][metric][-1]) for r in runs]
                ax.plot(*zip(*ends), "o", color=colors[label], ms=4, label=label)
                shown[metric] += [acc for _, acc in ends]
                continue
            grid, mean, low, high = _band(runs, "compute", epoch, metric)
            ax.plot(grid, mean, color=colors[label], lw=1.5, label=label)
            ax.fill_between(grid, low, high, color=colors[label], alpha=0.15, lw=0)
            shown[metric] += list(mean[len(mean) // 3:])
        if target is not None:
            for r in runs:
                i = first_reach(r["curve"], target, val_key)
                if i is not None:
                    axes[0].plot(r["curve"]["compute"][i] / epoch, target, "o", color=colors[label], ms=4)
    if target is not None:
        axes[0].axhline(target, color="black", ls="--", lw=0.8)
        axes[0].annotate(f"target {target:.4f}", (0.0, target), xytext=(2, 3), textcoords="offset points", fontsize=8)
    for ax, metric, name in ((axes[0], val_key, "validation"), (axes[1], test_key, "test")):
        _ylim(ax, shown[metric] + ([target] if target is not None and metric == val_key else []))
        ax.set_xlabel("compute (uniform epochs: forwards + 2 x backwards, over 3N)")
        ax.set_ylabel(f"{name} {name_of}")
        ax.grid(alpha=0.3)
    axes[0].set_title("validation: picks the target; dots = where each seed reaches it", fontsize=9)
    axes[1].set_title("test: reports only (dots: evaluated at the end only, one per seed)"
                      if not all(_has_curve([r], test_key) for r in results["runs"]) else "test: reports only",
                      fontsize=9)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{results['dataset']['name']}: {name_of} against compute, mean of {len(results['seeds'])} seed(s), "
                 "band = min..max over seeds", fontsize=11)
    _save(fig, path)


def plot_accuracy_time(results: dict[str, Any], path: Path) -> None:
    """Test accuracy against training wall time, per strategy, with seed bands."""
    labels = [row["strategy"] for row in results["summary"]]
    colors = _colors(labels)
    fig = Figure(figsize=(6.5, 4.4))
    ax = fig.subplots()
    shown = []
    for label in labels:
        runs = [r for r in results["runs"] if r["strategy"] == label]
        if not _has_curve(runs, "test_acc"):
            ax.plot([r["train_seconds"] for r in runs], [r["test_acc"] for r in runs], "o", color=colors[label],
                    ms=4, label=label)
            shown += [r["test_acc"] for r in runs]
            continue
        grid, mean, low, high = _band(runs, "seconds", 1.0, "test_acc")
        ax.plot(grid, mean, color=colors[label], lw=1.5, label=label)
        ax.fill_between(grid, low, high, color=colors[label], alpha=0.15, lw=0)
        shown += list(mean[len(mean) // 3:])
    _ylim(ax, shown)
    ax.set_xlabel("training wall time (s), evaluations excluded")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"{results['dataset']['name']}: test accuracy against wall time", fontsize=10)
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


def _recall_std(results: dict[str, Any], label: str, classes: int) -> list[float]:
    runs = [r["per_class_recall"] for r in results["runs"] if r["strategy"] == label]
    if len(runs) < 2:
        return [0.0] * classes
    return np.std(np.asarray(runs, dtype=np.float64), axis=0, ddof=1).tolist()


def plot_per_class_recall(results: dict[str, Any], path: Path) -> None:
    """Per-class recall bars with seed std, classes ordered from the rarest (in training) to the most frequent."""
    labels = [row["strategy"] for row in results["summary"]]
    counts = np.asarray(results["dataset"]["class_counts_train"])
    order = np.argsort(counts, kind="stable")
    classes = results["dataset"]["classes"]
    groups = [f"{classes[c]}\n(n={counts[c]})" for c in order]
    series = {row["strategy"]: [row["per_class_recall"][c] for c in order] for row in results["summary"]}
    errors = {label: [_recall_std(results, label, len(classes))[c] for c in order] for label in labels}
    fig = Figure(figsize=(max(7.0, 0.9 * len(groups) * max(1, len(labels) / 4)), 4.2))
    ax = fig.subplots()
    _grouped_bars(ax, groups, series, _colors(labels), errors)
    values = [v for s in series.values() for v in s if v is not None]
    low = min(values) if values else 0.0
    ax.set_ylim(max(0.0, low - max(0.02, 0.1 * (1.0 - low))), 1.0 + 0.01)
    ax.set_ylabel("test recall (mean over seeds, bar = std)")
    ax.set_title(f"{results['dataset']['name']}: recall per class, rarest first (n = training samples); "
                 "the axis does not start at 0", fontsize=10)
    ax.legend(fontsize=7, ncol=min(len(labels), 4), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    _save(fig, path)


SEPARATES = 0.01  # a slice is drawn when its strategies' means span at least this and twice the median seed std


def separating_slices(results: dict[str, Any]) -> list[int]:
    """The slices where the strategies' mean accuracies span more than twice the median seed std there (and at
    least SEPARATES): elsewhere every strategy reads the same and a bar chart would only repeat it."""
    rows = [r for r in results["summary"] if r.get("slice_acc") is not None]
    if len(rows) < 2:
        return []
    keep = []
    for k in range(len(SLICE_NAMES)):
        means = [r["slice_acc"][k] for r in rows]
        stds = [(r.get("slice_acc_std") or [0.0] * len(SLICE_NAMES))[k] or 0.0 for r in rows]
        spread = max(means) - min(means)
        if spread >= SEPARATES and spread > 2 * float(np.median(stds)):
            keep.append(k)
    return keep


def plot_slice_accuracy(results: dict[str, Any], path: Path) -> bool:
    """One panel per separating test slice of the reference model's loss quintiles (each with its own axis),
    bars with seed std; returns False (and writes nothing) when no slice separates the strategies."""
    keep = separating_slices(results)
    if not keep:
        return False
    rows = [r for r in results["summary"] if r.get("slice_acc") is not None]
    labels = [row["strategy"] for row in rows]
    colors = _colors(labels)
    fig = Figure(figsize=(max(4.0, 3.2 * len(keep)), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(keep)))
    for ax, k in zip(axes, keep):
        values = [row["slice_acc"][k] for row in rows]
        errors = [(row["slice_acc_std"] or [0.0] * len(SLICE_NAMES))[k] or 0.0 for row in rows]
        ax.bar(np.arange(len(rows)), values, 0.8, color=[colors[label] for label in labels], yerr=errors,
               error_kw={"lw": 0.7})
        ax.set_xticks([])
        _ylim(ax, [v - e for v, e in zip(values, errors)] + [v + e for v, e in zip(values, errors)])
        ax.set_title(f"slice '{SLICE_NAMES[k]}'", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("test accuracy within the slice")
    handles = [Patch(color=colors[label], label=label) for label in labels]
    fig.legend(handles=handles, fontsize=7, ncol=min(len(labels), 4), loc="lower center", bbox_to_anchor=(0.5, -0.08))
    fig.suptitle("accuracy by difficulty (quintiles of a reference model's test loss); separating slices only",
                 fontsize=10)
    _save(fig, path)
    return True


def plot_cartography_map(results: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]],
                         flipped: np.ndarray | None, path: Path) -> None:
    """Small multiples: the cartography map of the first seed's run of every strategy in `arrays`."""
    n = results["dataset"]["n_train"]
    flip = None
    if flipped is not None:
        flip = np.zeros(n, dtype=bool)
        flip[flipped] = True
    count = max(len(arrays), 1)
    cols = min(count, 4)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(3.6 * cols, 3.4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True)).ravel()
    for ax, (label, run) in zip(axes, arrays.items()):
        suspects = None
        if "suspects" in run:
            suspects = np.zeros(n, dtype=bool)
            suspects[run["suspects"]] = True
        plot_cartography(ax, run["confidence"], run["variability"], flip, suspects, max_points=3000,
                         title=label if len(label) <= 40 else label[:38] + "..")
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.xaxis.set_tick_params(labelbottom=True)  # every panel keeps its scale, also above an empty slot
        legend = ax.get_legend()
        if legend is not None and ax is not axes[0] and suspects is None:
            legend.remove()
    for ax in axes[len(arrays):]:
        ax.set_visible(False)
    fig.supxlabel("variability (std of the true-class probability over epochs)", fontsize=10)
    fig.supylabel("confidence (mean true-class probability)", fontsize=10)
    fig.suptitle(f"cartography of the training samples, seed {results['seeds'][0]}", fontsize=11)
    _save(fig, path)


def plot_all(results: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]], flipped: np.ndarray | None,
             out: Path) -> list[Path]:
    """Every plot of PLOTS into `out` (a slice plot only where slices separate); returns the paths written."""
    out = Path(out)
    plot_accuracy(results, out / "accuracy.png")
    plot_accuracy_time(results, out / "accuracy_time.png")
    plot_per_class_recall(results, out / "per_class_recall.png")
    written = [out / "accuracy.png", out / "accuracy_time.png", out / "per_class_recall.png"]
    if plot_slice_accuracy(results, out / "slice_accuracy.png"):
        written.append(out / "slice_accuracy.png")
    elif (out / "slice_accuracy.png").exists():
        (out / "slice_accuracy.png").unlink()
    plot_cartography_map(results, arrays, flipped, out / "cartography.png")
    written.append(out / "cartography.png")
    return written
