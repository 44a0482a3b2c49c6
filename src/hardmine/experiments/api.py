"""`hardmine.compare`: mining strategies side by side on the user's own model and data, written to a directory.

The CLI's `hardmine compare` calls this function with a built-in model factory and a named data set: one runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hardmine._checks import check_choice
from hardmine.datasets.tabular import LabeledData, check_classes
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import Splits, noise_seed, split_validation, subsample_geometric
from hardmine.experiments.metrics import BASELINE, check_metric, default_metric
from hardmine.experiments.results import RunStore
from hardmine.experiments.runner import (
    Comparison,
    NoiseOptions,
    StartRun,
    fingerprint,
    run_comparison,
)
from hardmine.experiments.spec import parse_spec, parse_specs
from hardmine.experiments.strategies import PerSampleLoss, build_strategy
from hardmine.experiments.tuning import DEFAULT_EXTEND, DEFAULT_GRID, Tuning

MAX_SEEDS = 100  # seeds per strategy: more is a typo, not a comparison (and would build a huge list first)
DEFAULT_STRATEGIES = "uniform,ohem,focal,importance,selective_backprop,prune_easy"
# What a practitioner would use on long-tailed classes instead of mining: added to the default strategies when the
# training classes are imbalanced (largest / smallest count above metrics.IMBALANCED_ABOVE).
IMBALANCE_STRATEGIES = "class_balanced,class_weighted,logit_adjusted,importance+class_balance"
DEFAULT_LR = {"sgd": 0.05, "adamw": 1e-3}  # the peak learning rate when none is given: AdamW's usual default


def dataset_arrays(dataset: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 [N, *shape] and int64 labels [N] of a map-style data set yielding `(x, y)` (a
    TensorDataset of two tensors is read without a copy per item); ValueError naming `name` otherwise."""
    if isinstance(dataset, torch.utils.data.TensorDataset) and len(dataset.tensors) == 2:
        x, y = dataset.tensors
    else:
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError(f"{name} must be a map-style data set (with __len__ and __getitem__) yielding (x, y), "
                            f"got {type(dataset).__name__}")
        if len(dataset) == 0:
            raise ValueError(f"{name} is empty")
        xs, ys = [], []
        for i in range(len(dataset)):
            item = dataset[i]
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise ValueError(f"{name}[{i}] must be a pair (x, y), got {type(item).__name__}"
                                 f"{' of length ' + str(len(item)) if isinstance(item, (tuple, list)) else ''}")
            xs.append(torch.as_tensor(item[0]))
            ys.append(torch.as_tensor(item[1]))
        try:
            x, y = torch.stack(xs), torch.stack(ys)
        except RuntimeError as err:
            raise ValueError(f"{name}: the samples' x do not all have one shape ({err})") from None
    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"{name}: labels y must be integer class ids, one per sample, got dtype {y.dtype} and shape "
                         f"{tuple(y.shape)}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{name}: labels must be class ids >= 0, got {int(y.min())}")
    return x.float().numpy(), y.long().numpy()


def _check_model(make_model: Callable[[int], nn.Module], sample: np.ndarray, num_classes: int, label: str) -> None:
    """Call the factory once and check that it returns a module mapping [2, *shape] to [2, num_classes]."""
    if not callable(make_model):
        raise TypeError(f"{label} must be a callable make_model(seed) -> nn.Module, got {type(make_model).__name__}")
    torch.manual_seed(0)
    try:
        model = make_model(0)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{label}: make_model(0) failed: {err}") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"{label}: make_model(0) must return a torch.nn.Module, got {type(model).__name__}")
    with torch.no_grad():
        try:
            out = model.eval()(torch.from_numpy(sample[:2]))
        except RuntimeError as err:
            raise ValueError(f"{label}: the model fails on samples of shape {tuple(sample.shape[1:])}: "
                             f"{' '.join(str(err).split())[:200]}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (min(2, len(sample)), num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{label}: the model must return logits [batch, {num_classes}], got {shape}")


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise TypeError(f"seeds must be a count or a list of ints, got {seeds!r}")
    if isinstance(seeds, (int, np.integer)):
        if not 1 <= seeds <= MAX_SEEDS:
            raise ValueError(f"--seeds must be in [1, {MAX_SEEDS}] (each seed trains every strategy), got {seeds}")
        return list(range(int(seeds)))
    values = list(seeds)
    if len(values) > MAX_SEEDS:
        raise ValueError(f"seeds: at most {MAX_SEEDS} (each seed trains every strategy), got {len(values)}")
    if not values or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in values):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds given twice in {values!r}")
    return [int(s) for s in values]


def _validation_part(data: LabeledData, val_set: Any, fraction: float, seed: int) -> tuple[Splits, Any]:
    """The splits: `val_set` as the validation part (its features' shape and its classes must be the training
    part's), or a stratified `fraction` of the training part; and what setup.json records of it."""
    if val_set is None:
        return split_validation(data, fraction, seed), fraction
    x_val, y_val = dataset_arrays(val_set, "val_set")
    if x_val.shape[1:] != data.input_shape:
        raise ValueError(f"val_set samples have shape {x_val.shape[1:]} but the training samples {data.input_shape}")
    train_classes, val_classes = set(np.unique(data.y_train).tolist()), set(np.unique(y_val).tolist())
    if train_classes != val_classes:
        names = data.classes
        def text(ids: set) -> list[str]:
            return [names[i] if i < len(names) else str(i) for i in sorted(ids)]
        raise ValueError(f"val_set classes differ from the training set's: missing {text(train_classes - val_classes)}"
                         f", not in the training set {text(val_classes - train_classes)}")
    return Splits(data, x_val, y_val), "val_set"


def _given_lr(lr: float | None, optimizer_name: str, notes: list[str]) -> float:
    """The given peak learning rate: `lr`, else the optimiser's usual default (DEFAULT_LR), said in `notes`."""
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))):
        raise TypeError(f"lr must be a number or None, got {lr!r}")
    if lr is None:
        lr = DEFAULT_LR[optimizer_name]
        notes.append(f"lr {lr:g}: the default for {optimizer_name} (no lr given)")
    return lr


def _own_lr(make_optimizer: Callable, make_model: Callable[[int], nn.Module], notes: list[str]) -> float:
    """A callable optimiser's own learning rate (its first parameter group's), said in `notes`."""
    built = make_optimizer(list(make_model(0).parameters()))
    if not isinstance(built, torch.optim.Optimizer):
        raise TypeError("optimizer(params) must return a torch.optim.Optimizer")
    own = float(built.param_groups[0]["lr"])
    notes.append(f"lr {own:g}: the callable optimizer's own (its first parameter group's)")
    return own


def _label(obj: Any) -> str | None:
    """A stable text for a callable in setup.json (module.qualname), or the text itself."""
    if obj is None or isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def compare(make_model: Callable[[int], nn.Module], train_set: Any, test_set: Any, *,
            strategies: str | Sequence[str] | None = None, seeds: int | Sequence[int] = 3, epochs: int = 10,
            out: str | Path, loss: PerSampleLoss | None = None,
            optimizer: str | Callable[..., torch.optim.Optimizer] = "sgd", batch_size: int = 128,
            lr: float | None = None, lr_grid: Sequence[float] = DEFAULT_GRID, tune: bool = True,
            lr_extend: int = DEFAULT_EXTEND,
            metric: str | None = None, val_set: Any = None, momentum: float = 0.9, weight_decay: float = 0.0,
            schedule: str = "cosine", warmup_steps: int = 0,
            augment: bool = False, validation: float = 0.1, label_noise: float = 0.0, noise_seed_mode: str = "per-seed",
            imbalance: float | None = None, data_seed: int = 0, classes: Sequence[str] | None = None,
            name: str = "custom", model_label: str | None = None, evals_per_epoch: int = 4, test_curve: bool = True,
            threads: int = 1, verbose: bool = True,
            on_run_start: StartRun | None = None, argv: list[str] | None = None,
            extra_setup: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train `make_model(seed)` with every strategy and seed on `train_set`, and write into `out` what
    `hardmine compare` writes: results.json, summary.csv, the plots and report.html. Returns the results dict.

    make_model(seed) -> nn.Module mapping x [B, *shape] to logits [B, C] (torch's generator is seeded with `seed`
    first). train_set / test_set: map-style data sets yielding `(x, y)` with integer labels in [0, C); a stratified
    `validation` fraction of train_set picks the target, the test set only reports. strategies: a comma-separated
    string as on the CLI or a list of specs ('uniform' is added when missing); None: DEFAULT_STRATEGIES, plus
    IMBALANCE_STRATEGIES when the training classes are imbalanced. seeds: a count (0 .. n-1) or a list.
    loss: per-sample loss `(logits, y) -> [B]` (default cross-entropy; OHEM wraps it). optimizer: "sgd", "adamw" or
    `make_optimizer(params) -> Optimizer` (the schedule and the tuning scale its learning rates). lr: the given peak
    learning rate (None: 0.05 for sgd, 1e-3 for adamw, a callable optimizer's own). tune: choose every strategy's
    peak rate, uniform's included, on the validation split among `lr_grid` (factors of the given rate) from its
    first seed's runs, extending the grid by up to `lr_extend` steps past an edge where the best rate lies (see
    `hardmine.experiments.tuning`); tune=False runs all at the given rate and the
    recommendation says "untuned". metric: "accuracy", "balanced_accuracy" or "macro_f1" for the target and the
    table (None: balanced accuracy when the training classes' largest/smallest count ratio exceeds 3, else
    accuracy). val_set: a map-style data set used as the validation part (instead of a `validation` fraction of
    train_set; its classes and feature shape must be train_set's). label_noise: fraction of training labels
    flipped, per seed (`noise_seed_mode="per-seed"`) or once (`"fixed"`). Every argument is checked, and the model
    called once, before anything is written; a rerun with the same `out` resumes the finished runs.
    test_curve=False evaluates the test set at the end of each run only (the validation curve is always kept).
    verbose: print the recommendation, warnings, table and findings to stdout, and a line per finished run to
    stderr (bars on a terminal). on_run_start(label, seed) -> on_epoch(epoch, validation accuracy): progress
    callbacks instead of those lines. argv: the command recorded in results.json. extra_setup: more JSON that a
    rerun must match to resume (the CLI's data options). The returned dict holds `recommendation` (one sentence),
    `warnings`, the `summary` rows, `tuning` and every run.
    """
    make_optimizer = None
    if callable(optimizer):
        make_optimizer, optimizer_name = optimizer, "sgd"
    elif isinstance(optimizer, str):
        optimizer_name = optimizer
    else:
        raise TypeError(f"optimizer must be 'sgd', 'adamw' or a callable, got {type(optimizer).__name__}")
    notes: list[str] = []
    if not isinstance(tune, bool):
        raise TypeError(f"tune must be True or False, got {tune!r}")
    tuning = Tuning(tuple(lr_grid) if isinstance(lr_grid, (list, tuple)) else lr_grid, tune, lr_extend)
    if not tune and tuning.grid != DEFAULT_GRID:
        notes.append(f"lr_grid {list(tuning.grid)} not used: tuning is off")
    if metric is not None:
        check_metric(metric)
    check_choice("--optimizer", optimizer_name, DEFAULT_LR)
    if make_optimizer is not None and lr is not None:
        raise ValueError(f"lr={lr} is for optimizer 'sgd' or 'adamw': a callable optimizer sets its own learning "
                         "rate (tuning scales it); leave lr=None")
    given_lr = 1.0 if make_optimizer is not None else _given_lr(lr, optimizer_name, notes)  # a callable's: below
    config = TrainConfig(model=model_label or _label(make_model) or "custom", epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer_name, lr=given_lr, momentum=momentum, weight_decay=weight_decay,
                         schedule=schedule, warmup_steps=warmup_steps, augment=augment,
                         evals_per_epoch=evals_per_epoch, test_curve=test_curve, threads=threads)
    seed_list = _seed_list(seeds)
    defaults = strategies is None
    text = DEFAULT_STRATEGIES if defaults else strategies if isinstance(strategies, str) else ",".join(strategies)
    specs = parse_specs(text)
    if BASELINE not in [s.label for s in specs]:
        specs.insert(0, parse_spec(BASELINE))
        notes.append("added 'uniform': every strategy is measured against it")
    noise_seed(noise_seed_mode, data_seed, 0)
    if isinstance(label_noise, bool) or not isinstance(label_noise, (int, float)) or not 0.0 <= label_noise < 1.0:
        raise ValueError(f"--label-noise must be in [0, 1), got {label_noise}")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a per-sample loss (logits, y) -> [B], got {type(loss).__name__}")
    x_train, y_train = dataset_arrays(train_set, "train_set")
    x_test, y_test = dataset_arrays(test_set, "test_set")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"train_set samples have shape {x_train.shape[1:]} but test_set samples {x_test.shape[1:]}")
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    names = tuple(str(c) for c in classes) if classes is not None else tuple(str(c) for c in range(num_classes))
    if len(names) < num_classes:
        raise ValueError(f"classes names {len(names)} classes but the labels go up to {num_classes - 1}")
    data = LabeledData(name, x_train, y_train, x_test, y_test, names)
    check_classes(data.y_train, f"the training part of {name}")
    if augment and len(data.input_shape) != 3:
        raise ValueError(f"--augment needs images [channels, height, width]; {name} has samples of shape "
                         f"{data.input_shape}")
    if imbalance is not None:
        data = subsample_geometric(data, imbalance, data_seed)
    splits, validation_setup = _validation_part(data, val_set, validation, data_seed)
    train_counts = np.bincount(splits.train.y_train, minlength=splits.train.num_classes)
    if defaults and default_metric(train_counts.tolist())[0] == "balanced_accuracy":
        specs.extend(parse_specs(IMBALANCE_STRATEGIES))
        notes.append(f"added the class-imbalance alternatives ({IMBALANCE_STRATEGIES.replace(',', ', ')}): the "
                     "training classes are imbalanced, and these are what a practitioner would try before mining")
    for spec in specs:  # every strategy builds, with the class counts of the data it trains on
        build_strategy(spec, loss, np.bincount(splits.train.y_train, minlength=splits.train.num_classes))
    _check_model(make_model, data.x_train, data.num_classes, "--model" if model_label else "make_model")
    if make_optimizer is not None:
        config = replace(config, lr=_own_lr(make_optimizer, make_model, notes))
    counts = np.bincount(splits.train.y_train, minlength=data.num_classes).tolist()
    chosen_metric, why = default_metric(counts)
    if metric is None:
        metric = chosen_metric
        notes.append(why)
    setup = {"dataset": name, "data": fingerprint(splits), "validation": validation_setup, "data_seed": data_seed,
             "label_noise": label_noise, "noise_seed": noise_seed_mode, "imbalance": imbalance,
             "loss": _label(loss), "optimizer": _label(optimizer), "config": config.to_dict(), **(extra_setup or {})}
    store = RunStore(Path(out), setup)
    store.check()
    comparison = Comparison(splits, make_model, specs, seed_list, config, NoiseOptions(label_noise, noise_seed_mode,
                            data_seed), store, setup, loss, make_optimizer, notes, metric, tuning)
    if not verbose:
        return run_comparison(comparison, on_run_start or _no_progress, argv)
    from rich.console import Console

    from hardmine.experiments.progress import RunProgress
    from hardmine.experiments.report import print_summary

    with RunProgress(epochs, enabled=on_run_start is None) as bars:
        results = run_comparison(comparison, on_run_start or bars.start, argv)
    print_summary(results, Console())
    return results


def _no_progress(label: str, seed: int | None) -> Callable[[int, float], None]:
    return lambda epoch, accuracy: None


