"""The one comparison runner: prepare (check everything, write nothing), then run every strategy x seed and write.

`hardmine.compare` (the Python API) and `hardmine compare` (the CLI, through that API) both end here. The
reference model behind the difficulty slices is trained like the uniform baseline, with its own seed
(REFERENCE_SEED) so that no compared run is scored on slices defined by itself.
"""

from __future__ import annotations

import hashlib
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
from hardmine.experiments.metrics import BASELINE, noise_scores, summarize
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

REFERENCE_SEED = 10_000
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
                           on_epoch=start_run("reference (uniform)", REFERENCE_SEED))
        logits = predict(output.model, torch.from_numpy(test.x_test))
        loss = per_sample_loss(logits, test.y_test)
        record = {"seed": REFERENCE_SEED, "test_acc": output.record["test_acc"]}
        store.save(BASELINE, None, record, {"test_loss": loss})
    else:
        record, arrays = found
        loss = arrays["test_loss"]
    slices = difficulty_slices(loss)
    record = {**record, "slice_loss_edges": [float(np.max(loss[slices == k])) for k in range(slices.max() + 1)]}
    return slices, record


def run_comparison(comparison: Comparison, start_run: StartRun, argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or load, when already in `out`) every run; write results.json, summary.csv, plots, report.html."""
    from hardmine.experiments.report import write_html

    store = comparison.store
    store.open()
    slices, reference = _reference_slices(comparison, start_run)
    noisy = {seed: comparison.noise.apply(comparison.data, seed) for seed in comparison.seeds}
    if comparison.noise.fraction > 0:
        store.save_noise({seed: flips for seed, (_, flips) in noisy.items()}, comparison.data.train.y_train)
    records = []
    for spec in comparison.specs:
        for seed in comparison.seeds:
            data, flips = noisy[seed]
            found = store.load(spec.label, seed)
            if found is None:
                counts = np.bincount(data.train.y_train, minlength=data.train.num_classes)
                strategy = build_strategy(spec, comparison.base_loss, counts)
                output = train_run(data, strategy, seed, comparison.config, comparison.make_model,
                                   comparison.base_loss, comparison.make_optimizer, slices,
                                   on_epoch=start_run(spec.label, seed), flipped=flips)
                record, arrays = output.record, output.arrays
                if flips is not None and "suspects" in arrays:
                    record.update(noise_scores(arrays["suspects"], flips))
                store.save(spec.label, seed, record, arrays)
            else:
                record = found[0]
            records.append(record)
    results = _results(comparison, records, reference, argv)
    write_results(store.out, results)
    render_plots(store.out, results)
    write_html(store.out, results)
    return results


def render_plots(out: Path, results: dict[str, Any]) -> list[Path]:
    """The plots of a results dict, with the cartography arrays of every strategy's first seed read from `out`."""
    store = RunStore(out, {})
    seed = results["seeds"][0]
    arrays = {}
    for label in results["strategies"]:
        found = store.load(label, seed)
        if found is not None:
            arrays[label] = found[1]
    return plot_all(results, arrays, store.load_noise(seed), Path(out))


def resummarize(results: dict[str, Any]) -> dict[str, Any]:
    """`results` with its target, baseline and summary rows computed again from its runs (for `hardmine report`)."""
    old = [r["strategy"] for r in results.get("runs", []) if "compute" not in r or "val_acc" not in r["curve"]]
    if old or "setup" not in results:
        raise ValueError("results.json was written by an older hardmine compare (no compute accounting or "
                         "validation curve): run `hardmine compare` again into a new --out directory")
    evals = results["config"]["evals_per_epoch"]
    target, baseline, rows = summarize(results["runs"], results["strategies"],
                                       results["dataset"]["class_counts_train"], evals)
    return {**results, "target": target, "baseline": baseline, "summary": rows}


def _results(comparison: Comparison, records: list[dict], reference: dict, argv: list[str] | None) -> dict[str, Any]:
    data = comparison.data
    train = data.train
    counts = np.bincount(train.y_train, minlength=train.num_classes).tolist()
    labels = [s.label for s in comparison.specs]
    target, baseline, rows = summarize(records, labels, counts, comparison.config.evals_per_epoch)
    return {
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
        "target": target,
        "baseline": baseline,
        "summary": rows,
        "runs": records,
    }
