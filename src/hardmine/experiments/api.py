"""`hardmine.compare`: mining strategies side by side on the user's own model and data, written to a directory.

The CLI's `hardmine compare` calls this function with a built-in model factory and a named data set: one runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hardmine.datasets.tabular import LabeledData, check_classes
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import noise_seed, split_validation, subsample_geometric
from hardmine.experiments.metrics import BASELINE
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

DEFAULT_STRATEGIES = "uniform,ohem,focal,importance:normalize=none,selective_backprop,prune_easy"


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
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        return list(range(int(seeds)))
    values = list(seeds)
    if not values or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0 for s in values):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {values!r}")
    if len(set(values)) != len(values):
        raise ValueError(f"seeds given twice in {values!r}")
    return [int(s) for s in values]


def _label(obj: Any) -> str | None:
    """A stable text for a callable in setup.json (module.qualname), or the text itself."""
    if obj is None or isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def compare(make_model: Callable[[int], nn.Module], train_set: Any, test_set: Any, *,
            strategies: str | Sequence[str] = DEFAULT_STRATEGIES, seeds: int | Sequence[int] = 3, epochs: int = 10,
            out: str | Path, loss: PerSampleLoss | None = None,
            optimizer: str | Callable[..., torch.optim.Optimizer] = "sgd", batch_size: int = 128, lr: float = 0.05,
            momentum: float = 0.9, weight_decay: float = 0.0, schedule: str = "cosine", warmup_steps: int = 0,
            augment: bool = False, validation: float = 0.1, label_noise: float = 0.0, noise_seed_mode: str = "per-seed",
            imbalance: float | None = None, data_seed: int = 0, classes: Sequence[str] | None = None,
            name: str = "custom", model_label: str | None = None, evals_per_epoch: int = 4, test_curve: bool = True,
            threads: int = 1,
            on_run_start: StartRun | None = None, argv: list[str] | None = None,
            extra_setup: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train `make_model(seed)` with every strategy and seed on `train_set`, and write into `out` what
    `hardmine compare` writes: results.json, summary.csv, the plots and report.html. Returns the results dict.

    make_model(seed) -> nn.Module mapping x [B, *shape] to logits [B, C] (torch's generator is seeded with `seed`
    first). train_set / test_set: map-style data sets yielding `(x, y)` with integer labels in [0, C); a stratified
    `validation` fraction of train_set picks the target, the test set only reports. strategies: a comma-separated
    string as on the CLI or a list of specs ('uniform' is added when missing). seeds: a count (0 .. n-1) or a list.
    loss: per-sample loss `(logits, y) -> [B]` (default cross-entropy; OHEM wraps it). optimizer: "sgd", "adamw" or
    `make_optimizer(params) -> Optimizer` (the schedule scales its learning rates). label_noise: fraction of training
    labels flipped, per seed (`noise_seed_mode="per-seed"`) or once (`"fixed"`). Every argument is checked, and the
    model called once, before anything is written; a rerun with the same `out` resumes the finished runs.
    test_curve=False evaluates the test set at the end of each run only (the validation curve is always kept).
    on_run_start(label, seed) -> on_epoch(epoch, validation accuracy): progress callbacks. argv: the command
    recorded in results.json. extra_setup: more JSON that a rerun must match to resume (the CLI's data options).
    """
    make_optimizer = None
    if callable(optimizer):
        make_optimizer, optimizer_name = optimizer, "sgd"
    elif isinstance(optimizer, str):
        optimizer_name = optimizer
    else:
        raise TypeError(f"optimizer must be 'sgd', 'adamw' or a callable, got {type(optimizer).__name__}")
    config = TrainConfig(model=model_label or _label(make_model) or "custom", epochs=epochs, batch_size=batch_size,
                         optimizer=optimizer_name, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         schedule=schedule, warmup_steps=warmup_steps, augment=augment,
                         evals_per_epoch=evals_per_epoch, test_curve=test_curve, threads=threads)
    seed_list = _seed_list(seeds)
    text = strategies if isinstance(strategies, str) else ",".join(strategies)
    specs = parse_specs(text)
    notes = []
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
    splits = split_validation(data, validation, data_seed)
    for spec in specs:  # every strategy builds, with the class counts of the data it trains on
        build_strategy(spec, loss, np.bincount(splits.train.y_train, minlength=splits.train.num_classes))
    _check_model(make_model, data.x_train, data.num_classes, "--model" if model_label else "make_model")
    if make_optimizer is not None:
        params = list(make_model(0).parameters())
        if not isinstance(make_optimizer(params), torch.optim.Optimizer):
            raise TypeError("optimizer(params) must return a torch.optim.Optimizer")
    setup = {"dataset": name, "data": fingerprint(splits), "validation": validation, "data_seed": data_seed,
             "label_noise": label_noise, "noise_seed": noise_seed_mode, "imbalance": imbalance,
             "loss": _label(loss), "optimizer": _label(optimizer), "config": config.to_dict(), **(extra_setup or {})}
    store = RunStore(Path(out), setup)
    store.check()
    comparison = Comparison(splits, make_model, specs, seed_list, config, NoiseOptions(label_noise, noise_seed_mode,
                            data_seed), store, setup, loss, make_optimizer, notes)
    return run_comparison(comparison, on_run_start or _no_progress, argv)


def _no_progress(label: str, seed: int | None) -> Callable[[int, float], None]:
    return lambda epoch, accuracy: None


