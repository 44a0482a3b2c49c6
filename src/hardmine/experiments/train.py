"""One run: train a model with one strategy and one seed, measuring accuracy against backprops and time.

The loop is hardmine's three touch points (the sampler draws the indices, `update` records the per-sample loss
and the statistics of `hardmine.scores.statistics`, the loss is weighted by `sampler.weights`), on tensors
indexed directly by the sampler's batches. Timed: the whole step, including the draw; not timed: test-set
evaluations. A sampler policy that gives some samples weight 0 (selective backprop) gets them counted as not
back-propagated; when fewer than 2/3 of a batch are kept, the kept ones are forwarded again with gradient and
only they are back-propagated (the first forward pass then only scored the batch, and is counted in the time).
A run whose per-sample loss becomes non-finite or exceeds DIVERGED_LOSS stops there and is recorded as diverged
(mining "can destabilize optimization"): its final numbers are those of the model as it is then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

import hardmine as hm
from hardmine.datasets.tabular import LabeledData
from hardmine.diagnostics.evaluation import macro_f1, per_class_recall, predict, slice_accuracy
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.models import build_model
from hardmine.experiments.strategies import Strategy, cross_entropy
from hardmine.scores import statistics

REFORWARD_BELOW = 2 / 3  # forward+backward of k of B samples beats a backward of all B when k < 2B/3
DIVERGED_LOSS = 1e4  # a per-sample cross-entropy above this (true-class probability < e^-10000): training blew up
EpochCallback = Callable[[int, float], None]


@dataclass
class RunOutput:
    """A finished run: `record` holds its numbers (JSON-ready), `arrays` per-sample data for the plots."""

    record: dict
    arrays: dict[str, np.ndarray]
    model: torch.nn.Module


class _Evaluator:
    def __init__(self, data: LabeledData) -> None:
        self.x = torch.from_numpy(data.x_test)
        self.y = data.y_test

    def accuracy(self, model: torch.nn.Module) -> float:
        return float((predict(model, self.x).argmax(1).numpy() == self.y).mean())


class _Diverged(Exception):
    """Training blew up: a per-sample loss is non-finite or above DIVERGED_LOSS."""


def _training_step(model: torch.nn.Module, strategy: Strategy, sampler: hm.HardExampleSampler,
                   idx: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor | None, int, float]:
    """The loss to back-propagate (None when nothing is kept), the samples it back-propagates, and the seconds
    spent computing the memory's statistics (hardmine's work in the loop)."""
    logits = model(x)
    loss_all = cross_entropy(logits, y)
    worst = float(loss_all.detach().max())
    if not worst <= DIVERGED_LOSS:
        raise _Diverged(worst)
    started = time.perf_counter()
    stats = statistics(logits.detach(), y)
    stats_seconds = time.perf_counter() - started
    sampler.update(idx, loss_all.detach(), **stats)
    if strategy.loss_mean is not None:
        keep = sampler.selection(idx)  # the guards' per-batch selection: a noise guard leaves out its suspects
        if not bool(keep.all()):
            if not bool(keep.any()):
                return None, 0, stats_seconds
            logits, y = logits[keep], y[keep]
        loss, kept = strategy.in_batch_loss(logits, y)
        return loss, kept, stats_seconds
    weights = sampler.weights(idx)
    keep = weights > 0
    kept = int(keep.sum())
    if kept == 0:
        return None, 0, stats_seconds
    if kept < REFORWARD_BELOW * idx.size:
        loss = (weights[keep] * cross_entropy(model(x[keep]), y[keep])).sum() / idx.size
        return loss, kept, stats_seconds
    return hm.reduce(loss_all, weights), kept, stats_seconds


def train_run(data: LabeledData, strategy: Strategy, seed: int, config: TrainConfig,
              slices: np.ndarray | None = None, on_epoch: EpochCallback | None = None) -> RunOutput:
    """Train `config.model` on `data` with `strategy`, seeded by `seed` (model initialisation and sampler).

    slices: difficulty slice id [M] of each test sample (from a reference model), for slice accuracy.
    on_epoch(epoch, test_accuracy) is called after each epoch (for a progress bar).
    The record holds: final test accuracy, macro-F1, per-class recall, slice accuracy; the curve of test accuracy
    against epochs, backprops (samples back-propagated) and training seconds; the totals; hardmine's own seconds
    (the sampler's `mining_seconds` plus `hardmine.scores.statistics` for the memory, each also given alone);
    the number of the guards' label-noise suspects; `diverged`: None, or the epoch and loss where training blew up.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    model = build_model(config.model, data.input_shape, data.num_classes, config.hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    x_train, y_train = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    memory = hm.ScoreMemory(len(y_train), labels=data.y_train)
    sampler = hm.HardExampleSampler(memory, config.batch_size, policy=strategy.policy, seed=seed)
    evaluator = _Evaluator(data)
    curve = {"epoch": [0.0], "backprops": [0], "seconds": [0.0], "test_acc": [evaluator.accuracy(model)]}
    totals = {"backprops": 0, "seconds": 0.0, "statistics_seconds": 0.0, "position": 0.0}
    model.train()
    diverged = None
    try:
        _epochs(model, optimizer, strategy, sampler, x_train, y_train, config, evaluator, curve, on_epoch, totals)
    except _Diverged as err:
        diverged = {"epoch": totals["position"], "loss": err.args[0]}
    return _finish(data, strategy, seed, model, memory, sampler, curve, slices, totals["statistics_seconds"],
                   diverged)


def _epochs(model: torch.nn.Module, optimizer: torch.optim.Optimizer, strategy: Strategy,
            sampler: hm.HardExampleSampler, x_train: torch.Tensor, y_train: torch.Tensor, config: TrainConfig,
            evaluator: _Evaluator, curve: dict, on_epoch: EpochCallback | None, totals: dict[str, float]) -> None:
    """The training epochs; appends to `curve` and accumulates `totals` (backprops, seconds, statistics_seconds;
    position: the epoch, with the fraction of it done)."""
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        batches = iter(sampler)
        step, steps, eval_at = 0, 1, set()
        while True:
            started = time.perf_counter()
            idx = next(batches, None)
            if idx is None:
                break
            if step == 0:  # the policy and its guards decide the epoch (its length, the suspects) at the first draw
                steps = len(sampler)
                eval_at = {round(steps * (k + 1) / config.evals_per_epoch) - 1 for k in range(config.evals_per_epoch)}
            totals["position"] = epoch + step / steps
            loss, kept, stat_s = _training_step(model, strategy, sampler, idx, x_train[idx], y_train[idx])
            if loss is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            totals["seconds"] += time.perf_counter() - started
            totals["statistics_seconds"] += stat_s
            totals["backprops"] += kept
            if step in eval_at:
                curve["epoch"].append(epoch + (step + 1) / steps)
                curve["backprops"].append(totals["backprops"])
                curve["seconds"].append(totals["seconds"])
                curve["test_acc"].append(evaluator.accuracy(model))
            step += 1
        if on_epoch is not None:
            on_epoch(epoch, curve["test_acc"][-1])


def _finish(data: LabeledData, strategy: Strategy, seed: int, model: torch.nn.Module, memory: hm.ScoreMemory,
            sampler: hm.HardExampleSampler, curve: dict, slices: np.ndarray | None,
            stats_seconds: float, diverged: dict | None) -> RunOutput:
    pred = predict(model, torch.from_numpy(data.x_test)).argmax(1).numpy()
    y = data.y_test
    sampler_stats = sampler.stats()
    hardmine_seconds = sampler_stats["mining_seconds"] + stats_seconds
    train_seconds = curve["seconds"][-1]
    suspects = strategy.suspects()
    record = {
        "strategy": strategy.label,
        "seed": seed,
        "test_acc": float((pred == y).mean()),
        "macro_f1": macro_f1(pred, y, data.num_classes),
        "per_class_recall": per_class_recall(pred, y, data.num_classes).tolist(),
        "slice_acc": None if slices is None else slice_accuracy(pred, y, slices).tolist(),
        "curve": curve,
        "backprops": curve["backprops"][-1],
        "train_seconds": train_seconds,
        "hardmine_seconds": hardmine_seconds,
        "sampler_seconds": sampler_stats["mining_seconds"],
        "statistics_seconds": stats_seconds,
        "hardmine_fraction": hardmine_seconds / train_seconds if train_seconds > 0 else float("nan"),
        "num_suspects": None if suspects is None else int(suspects.size),
        "diverged": diverged,
        "sampler_stats": {k: float(v) for k, v in sampler_stats.items()},
    }
    arrays = {"confidence": memory.get("confidence"), "variability": memory.get("variability")}
    if suspects is not None:
        arrays["suspects"] = suspects
    return RunOutput(record, arrays, model)
