"""`compare` as a function: prepare (check everything, write nothing), then run every strategy x seed and write.

The reference model behind the difficulty slices is trained like the uniform baseline, with its own seed
(REFERENCE_SEED) so that no compared run is scored on slices defined by itself.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import hardmine
from hardmine.datasets.tabular import LabeledData
from hardmine.diagnostics.evaluation import difficulty_slices, per_sample_loss, predict
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import LabelNoise, flip_labels, load_dataset, subsample_geometric
from hardmine.experiments.metrics import BASELINE, noise_scores, summarize
from hardmine.experiments.plots import cartography_runs, plot_all
from hardmine.experiments.results import RunStore, write_results
from hardmine.experiments.spec import StrategySpec, parse_spec, parse_specs
from hardmine.experiments.strategies import build_strategy
from hardmine.experiments.train import EpochCallback, train_run

REFERENCE_SEED = 10_000
StartRun = Callable[[str, int | None], EpochCallback]


@dataclass(frozen=True)
class DataOptions:
    """Where the data comes from and how it is corrupted (training part only), all seeded by `data_seed`."""

    dataset: str = "digits"
    data_dir: Path | None = None
    label_column: str | None = None
    test_fraction: float = 0.25
    data_seed: int = 0
    label_noise: float = 0.0
    imbalance: float | None = None

    def setup(self) -> dict[str, Any]:
        """What two runs must share to be compared (the data directory may move; the data may not)."""
        return {"dataset": self.dataset, "label_column": self.label_column, "test_fraction": self.test_fraction,
                "data_seed": self.data_seed, "label_noise": self.label_noise, "imbalance": self.imbalance}


@dataclass
class Comparison:
    """Everything checked and loaded, nothing written yet."""

    data: LabeledData
    noise: LabelNoise | None
    specs: list[StrategySpec]
    seeds: list[int]
    config: TrainConfig
    options: DataOptions
    store: RunStore
    notes: list[str] = field(default_factory=list)


def prepare(options: DataOptions, strategies: str, seeds: int, config: TrainConfig, out: Path) -> Comparison:
    """Parse and build every strategy, load and corrupt the data, check `out`; raise on any bad input."""
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    specs = parse_specs(strategies)
    for spec in specs:
        build_strategy(spec)
    notes = []
    if BASELINE not in [s.label for s in specs]:
        specs.insert(0, parse_spec(BASELINE))
        notes.append("added 'uniform': every strategy is measured against it")
    data = load_dataset(options.dataset, options.data_dir, options.label_column, options.test_fraction,
                        options.data_seed)
    if options.imbalance is not None:
        data = subsample_geometric(data, options.imbalance, options.data_seed)
    noise = None
    if options.label_noise > 0:
        data, noise = flip_labels(data, options.label_noise, options.data_seed)
    elif options.label_noise < 0:
        raise ValueError(f"--label-noise must be in [0, 1), got {options.label_noise}")
    if config.model == "cnn" and len(data.input_shape) != 3:
        raise ValueError(f"--model cnn needs images; {data.name} has samples of shape {data.input_shape}")
    store = RunStore(out, {**options.setup(), "config": config.to_dict()})
    store.check()
    return Comparison(data, noise, specs, list(range(seeds)), config, options, store, notes)


def _reference_slices(comparison: Comparison, start_run: StartRun) -> tuple[np.ndarray, dict[str, Any]]:
    store, data = comparison.store, comparison.data
    found = store.load(BASELINE, None)
    if found is None:
        output = train_run(data, build_strategy(parse_spec(BASELINE)), REFERENCE_SEED, comparison.config,
                           on_epoch=start_run("reference (uniform)", REFERENCE_SEED))
        logits = predict(output.model, torch.from_numpy(data.x_test))
        loss = per_sample_loss(logits, data.y_test)
        record = {"seed": REFERENCE_SEED, "test_acc": output.record["test_acc"]}
        store.save(BASELINE, None, record, {"test_loss": loss})
    else:
        record, arrays = found
        loss = arrays["test_loss"]
    slices = difficulty_slices(loss)
    record = {**record, "slice_loss_edges": [float(np.max(loss[slices == k])) for k in range(slices.max() + 1)]}
    return slices, record


def run_comparison(comparison: Comparison, start_run: StartRun, argv: list[str] | None = None) -> dict[str, Any]:
    """Train (or load, when already in `out`) every run, then write results.json, summary.csv and the plots."""
    store, data, noise = comparison.store, comparison.data, comparison.noise
    store.open()
    if noise is not None:
        store.save_noise(noise.flipped, noise.clean_labels)
    slices, reference = _reference_slices(comparison, start_run)
    records = []
    for spec in comparison.specs:
        for seed in comparison.seeds:
            found = store.load(spec.label, seed)
            if found is None:
                output = train_run(data, build_strategy(spec), seed, comparison.config, slices,
                                   on_epoch=start_run(spec.label, seed))
                record, arrays = output.record, output.arrays
                if noise is not None and "suspects" in arrays:
                    record.update(noise_scores(arrays["suspects"], noise.flipped))
                store.save(spec.label, seed, record, arrays)
            else:
                record = found[0]
            records.append(record)
    results = _results(comparison, records, reference, argv)
    write_results(store.out, results)
    render_plots(store.out, results)
    return results


def render_plots(out: Path, results: dict[str, Any]) -> list[Path]:
    """The plots of a results dict, with the cartography arrays read from the runs in `out`."""
    store = RunStore(out, {})
    arrays = {}
    for label in cartography_runs(results):
        found = store.load(label, results["seeds"][0])
        if found is not None:
            arrays[label] = found[1]
    flipped = None
    if (Path(out) / "label_noise.npz").exists():
        with np.load(Path(out) / "label_noise.npz", allow_pickle=False) as noise:
            flipped = noise["flipped"]
    return plot_all(results, arrays, flipped, Path(out))


def _results(comparison: Comparison, records: list[dict], reference: dict, argv: list[str] | None) -> dict[str, Any]:
    data, noise = comparison.data, comparison.noise
    counts = np.bincount(data.y_train, minlength=data.num_classes).tolist()
    labels = [s.label for s in comparison.specs]
    baseline, rows = summarize(records, labels, counts)
    return {
        "versions": {"hardmine": hardmine.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version(), "machine": platform.machine()},
        "command": argv if argv is not None else sys.argv,
        "dataset": {"name": data.name, **comparison.options.setup(), "n_train": int(data.y_train.size),
                    "n_test": int(data.y_test.size), "input_shape": list(data.input_shape),
                    "classes": list(data.classes), "class_counts_train": counts,
                    "flipped": None if noise is None else int(noise.flipped.size)},
        "config": comparison.config.to_dict(),
        "seeds": comparison.seeds,
        "strategies": labels,
        "notes": comparison.notes,
        "reference": reference,
        "baseline": baseline,
        "summary": rows,
        "runs": records,
    }
