"""The one comparison runner: prepare (check everything, write nothing), then run every strategy x seed and write.

`hardmine.compare` (the Python API) and `hardmine compare` (the CLI, through that API) both end here. Each
strategy's learning rate is tuned on its first seed (`tuning.py`), then its other seeds run at the chosen rate. The
difficulty reference behind the test slices is trained like the uniform baseline at the given rate, with its own
seed (REFERENCE_SEED) so that no compared run is scored on slices defined by itself.
"""

from __future__ import annotations

import hashlib
import math
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hardmine.diagnostics.evaluation import difficulty_slices, per_sample_loss, predict
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import Splits, flip_labels, noise_seed
from hardmine.experiments.metrics import BASELINE, curve_key, last_epoch_accuracy, noise_scores, summarize
from hardmine.experiments.plots import plot_all
from hardmine.experiments.results import RunStore, write_results
from hardmine.experiments.spec import StrategySpec, parse_spec
from hardmine.experiments.strategies import PerSampleLoss, build_strategy
from hardmine.experiments.train import (
    EpochCallback,
    ModelFactory,
    OptimizerFactory,
    train_run,
)
from hardmine.experiments.tuning import Tuning, choose_factor, lr_label, with_horizon

REFERENCE_SEED = 10_000
REFERENCE_NAME = "difficulty reference for the slices (uniform)"
StartRun = Callable[[str, int | None], EpochCallback]


@dataclass(frozen=True)
class NoiseOptions:
    """Symmetric label noise on the training part: `fraction` of its labels, drawn per run seed ("per-seed") or
    once for all seeds ("fixed"), seeded with `data_seed`."""

    fraction: float = 0.0
    mode: str = "per-seed"
    data_seed: int = 0

    def apply(self, data: Splits, seed: int) -> tuple[Splits, np.ndarray | None]:
        """The data run `seed` trains on, and the flipped training indices (None without noise)."""
        if self.fraction == 0:
            return data, None
        noisy, noise = flip_labels(data.train, self.fraction, noise_seed(self.mode, self.data_seed, seed))
        return replace(data, train=noisy), noise.flipped


@dataclass
class Comparison:
    """Everything checked and loaded, nothing written yet."""

    data: Splits
    make_model: ModelFactory
    specs: list[StrategySpec]
    seeds: list[int]
    config: TrainConfig
    noise: NoiseOptions
    store: RunStore
    setup: dict[str, Any]
    base_loss: PerSampleLoss | None = None
    make_optimizer: OptimizerFactory | None = None
    notes: list[str] = field(default_factory=list)
    metric: str = "accuracy"
    tuning: Tuning = field(default_factory=Tuning)


def fingerprint(data: Splits) -> str:
    """A short hash of the data's labels, shapes and first rows: a rerun on other data does not resume."""
    digest = hashlib.sha1()
    train = data.train
    for array in (train.y_train, data.y_val, train.y_test, train.x_train[:256], data.x_val[:256], train.x_test[:256]):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _reference_slices(comparison: Comparison, start_run: StartRun) -> tuple[np.ndarray, dict[str, Any]]:
    store = comparison.store
    test = comparison.data.train
    found = store.load(BASELINE, None)
    if found is None:
        data, _ = comparison.noise.apply(comparison.data, REFERENCE_SEED)
        counts = np.bincount(data.train.y_train, minlength=data.train.num_classes)
        output = train_run(data, build_strategy(parse_spec(BASELINE), comparison.base_loss, counts), REFERENCE_SEED,
                           comparison.config, comparison.make_model, comparison.base_loss, comparison.make_optimizer,
                           on_epoch=start_run(REFERENCE_NAME, REFERENCE_SEED))
        logits = predict(output.model, torch.from_numpy(test.x_test))
        loss = per_sample_loss(logits, test.y_test)
        record = {"seed": REFERENCE_SEED, "test_acc": output.record["test_acc"]}
        store.save(BASELINE, None, record, {"test_loss": loss})
    else:
        record, arrays = found
        loss = arrays["test_loss"]
    slices = difficulty_slices(loss)
    record = {**record, "what": f"{REFERENCE_NAME}: a separate uniform run at the given lr whose test losses define "
                                "the difficulty slices; not compared",
              "slice_loss_edges": [float(np.max(loss[slices == k])) for k in range(slices.max() + 1)]}
    return slices, record


@dataclass
class _Runs:
    """The runs of a comparison so far: judged (each strategy at its chosen rate), tuning (the other rates)."""

    judged: list[dict] = field(default_factory=list)
    tuning: list[dict] = field(default_factory=list)
    at_edge: list[str] = field(default_factory=list)
    chosen: dict[str, dict[str, float]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)


def _run(comparison: Comparison, spec: StrategySpec, seed: int, factor: float, context: dict[str, Any],
         start_run: StartRun, grid: bool) -> dict:
    """The record of `spec` with `seed` at `factor` times the given learning rate: loaded when already in the
    store, else trained and saved."""
    store = comparison.store
    lr = comparison.config.lr * factor
    found = store.load(lr_label(spec.label, lr), seed)
    if found is not None:
        return found[0]
    label = spec.label
    data, flips = context["noisy"][seed]
    spec = with_horizon(spec, comparison.config.epochs)
    strategy = build_strategy(spec, comparison.base_loss,
                              np.bincount(data.train.y_train, minlength=data.train.num_classes))
    display = f"{label} lr={lr:.4g}" + (" (lr grid)" if grid else "")
    output = train_run(data, strategy, seed, comparison.config, comparison.make_model,
                       comparison.base_loss, comparison.make_optimizer, context["slices"],
                       on_epoch=start_run(display, seed), flipped=flips, lr_factor=factor)
    record, arrays = output.record, output.arrays
    record.update(strategy=label, lr=lr, lr_factor=factor)
    if flips is not None and "suspects" in arrays:
        record.update(noise_scores(arrays["suspects"], flips))
    store.save(lr_label(label, lr), seed, record, arrays)
    return record


def _strategy(comparison: Comparison, spec: StrategySpec, context: dict[str, Any], start_run: StartRun,
              runs: _Runs) -> None:
    """Tune `spec`'s learning rate on the first seed, then run the other seeds at the chosen rate."""
    first, *rest = comparison.seeds
    factors = comparison.tuning.factors()
    key = curve_key("val", comparison.metric)
    by_factor, scores, failed = {}, {}, []

    def tune(factor: float) -> float:
        record = _run(comparison, spec, first, factor, context, start_run, len(factors) > 1)
        by_factor[factor] = record
        scores[factor] = last_epoch_accuracy(record["curve"], comparison.config.evals_per_epoch, key)
        if record.get("diverged") is not None or record.get("collapsed"):
            failed.append(factor)
        return choose_factor({f: math.nan if f in failed else v for f, v in scores.items()})

    for factor in factors:
        chosen = tune(factor)
    while (factor := comparison.tuning.beyond(list(by_factor), chosen)) is not None:
        chosen = tune(factor)
    if comparison.tuning.enabled and len(by_factor) > 2 and chosen in (min(by_factor), max(by_factor)):
        runs.at_edge.append(spec.label)
    runs.judged.append(by_factor[chosen])
    runs.judged += [_run(comparison, spec, seed, chosen, context, start_run, False) for seed in rest]
    runs.tuning += [record for factor, record in by_factor.items() if factor != chosen]
    runs.chosen[spec.label] = {"lr": comparison.config.lr * chosen, "factor": chosen}
    runs.scores[spec.label] = {f"{comparison.config.lr * f:.6g}": (v if math.isfinite(v) else None)
                               for f, v in scores.items()}
    if failed:
        runs.scores[spec.label]["failed"] = [f"{comparison.config.lr * f:.6g}" for f in failed]


def run_comparison(comparison: Comparison, start_run: StartRun, argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or load, when already in `out`) every run; write results.json, summary.csv, plots, report.html."""
    from hardmine.experiments.report import write_html

    store = comparison.store
    store.open()
    slices, reference = _reference_slices(comparison, start_run)
    noisy = {seed: comparison.noise.apply(comparison.data, seed) for seed in comparison.seeds}
    if comparison.noise.fraction > 0:
        store.save_noise({seed: flips for seed, (_, flips) in noisy.items()}, comparison.data.train.y_train)
    runs = _Runs()
    context = {"noisy": noisy, "slices": slices}
    for spec in comparison.specs:
        _strategy(comparison, spec, context, start_run, runs)
    results = _results(comparison, runs, reference, argv)
    write_results(store.out, results)
    render_plots(store.out, results)
    write_html(store.out, results)
    return results


def render_plots(out: Path, results: dict[str, Any]) -> list[Path]:
    """The plots of a results dict, with the cartography arrays of every strategy's first seed read from `out`."""
    store = RunStore(out, {})
    seed = results["seeds"][0]
    chosen = results.get("tuning", {}).get("chosen", {})
    arrays = {}
    for label in results["strategies"]:
        found = store.load(lr_label(label, chosen[label]["lr"]) if label in chosen else label, seed)
        if found is not None:
            arrays[label] = found[1]
    return plot_all(results, arrays, store.load_noise(seed), Path(out))


_RESULT_KEYS = ("config", "dataset", "runs", "strategies", "target")


def _check_results(results: Any) -> None:
    """ValueError unless `results` has the shape today's `hardmine compare` writes, with finite final numbers."""
    if not isinstance(results, dict):
        raise ValueError(f"results.json must be a JSON object written by hardmine compare, got a "
                         f"{type(results).__name__}")
    runs = results.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ValueError("results.json holds no runs: run `hardmine compare` into that directory first")
    for i, run in enumerate(runs):
        lacking = [k for k in ("strategy", "curve") if not isinstance(run, dict) or k not in run]
        if lacking:
            raise ValueError(f"results.json run {i} lacks {lacking}: the file was edited or cut; run `hardmine "
                             "compare` again")
    if "setup" not in results or any("compute" not in r or "val_acc" not in r["curve"] for r in runs):
        raise ValueError("results.json was written by an older hardmine compare (no compute accounting or "
                         "validation curve): run `hardmine compare` again into a new --out directory")
    missing = [k for k in _RESULT_KEYS if k not in results]
    if missing:
        raise ValueError(f"results.json lacks {missing}: it was not written by hardmine compare, or was edited")
    for i, run in enumerate(runs):
        if "seed" not in run:
            raise ValueError(f"results.json run {i} lacks ['seed']: the file was edited or cut; run `hardmine "
                             "compare` again")
        value = run.get("test_acc")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"results.json run {i} ({run['strategy']} seed {run['seed']}) has test_acc={value!r}: "
                             "not a finite number; the file was edited")


def resummarize(results: dict[str, Any]) -> dict[str, Any]:
    """`results` with its target, baseline and summary rows computed again from its runs (for `hardmine report`);
    a ValueError naming what is wrong when it is not a comparison's results (another JSON, an edited file)."""
    _check_results(results)
    from hardmine.experiments.verdict import recommendation, warnings

    evals = results["config"]["evals_per_epoch"]
    metric = results["target"].get("metric", "accuracy")
    target, baseline, rows = summarize(results["runs"], results["strategies"],
                                       results["dataset"]["class_counts_train"], evals, metric,
                                       results.get("tuning_runs", []))
    results = {**results, "target": target, "baseline": baseline, "summary": rows}
    return {**results, "recommendation": recommendation(results), "warnings": warnings(results)}


def _results(comparison: Comparison, runs: _Runs, reference: dict, argv: list[str] | None) -> dict[str, Any]:
    from hardmine.experiments.verdict import recommendation, warnings

    data = comparison.data
    train = data.train
    counts = np.bincount(train.y_train, minlength=train.num_classes).tolist()
    labels = [s.label for s in comparison.specs]
    target, baseline, rows = summarize(runs.judged, labels, counts, comparison.config.evals_per_epoch,
                                       comparison.metric, runs.tuning)
    tuning_compute = sum(r["compute"] for r in runs.tuning) / baseline["compute"]
    results = {
        "versions": {"hardmine": sys.modules["hardmine"].__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "python": platform.python_version(), "machine": platform.machine()},
        "command": argv if argv is not None else sys.argv,
        "setup": comparison.setup,
        "dataset": {"name": data.name, "n_train": int(train.y_train.size), "n_val": int(data.y_val.size),
                    "n_test": int(train.y_test.size), "input_shape": list(train.input_shape),
                    "classes": list(train.classes), "class_counts_train": counts,
                    "label_noise": comparison.noise.fraction, "noise_seed": comparison.noise.mode,
                    "flipped": round(comparison.noise.fraction * train.y_train.size) or None},
        "config": comparison.config.to_dict(),
        "seeds": comparison.seeds,
        "strategies": labels,
        "notes": comparison.notes,
        "reference": reference,
        "tuning": {"enabled": comparison.tuning.enabled, "grid": list(comparison.tuning.factors()),
                   "extend": comparison.tuning.extend,
                   "seed": comparison.seeds[0], "chosen": runs.chosen, "validation_scores": runs.scores,
                   "at_edge": runs.at_edge,
                   "compute": tuning_compute,
                   "definition": "the first seed of every strategy runs at each grid factor times the given lr; "
                                 "the best final validation metric picks the rate (ties: the given lr); "
                                 "a best rate at the edge extends the grid one step past it, up to `extend` "
                                 "times; "
                                 "compute of the runs at the other rates, over uniform's mean total compute"},
        "target": target,
        "baseline": baseline,
        "summary": rows,
        "runs": runs.judged,
        "tuning_runs": runs.tuning,
    }
    return {**results, "recommendation": recommendation(results), "warnings": warnings(results)}
