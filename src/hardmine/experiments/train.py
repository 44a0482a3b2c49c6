"""One run: train a model with one strategy and one seed, counting its compute and measuring accuracy.

The loop is hardmine's three touch points (the sampler draws the indices, `update` records the per-sample loss
and the signals of `hardmine.scores.signals`, the loss is weighted by `sampler.weights`), on tensors
indexed directly by the sampler's batches.

Cost, as a reviewer counts it (see `accounting.py`): every sample passed forward (the scoring pass of each batch and
any re-forward) and every sample in the graph of a backward pass. Every strategy that back-propagates only some
samples of a batch (a sampler's zero weights, as in selective backprop; an in-batch selector such as OHEM) goes
through one mechanism, `backward_set`: when fewer than REFORWARD_BELOW of the batch are kept, the kept samples are
forwarded again with gradient and only they are back-propagated; otherwise the whole batch's graph is
back-propagated and counted in full (a zero weight saves no compute). Timed: the whole step, draw included; not
timed and not counted: the validation and test evaluations. A run whose per-sample loss becomes non-finite or
exceeds DIVERGED_LOSS stops there and is recorded as diverged: its final numbers are those of the model then.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hardmine.diagnostics.evaluation import (
    macro_f1,
    per_class_recall,
    predict,
    slice_accuracy,
)
from hardmine.experiments.accounting import Cost, backward_set
from hardmine.experiments.augment import augment_images
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import Splits
from hardmine.experiments.metrics import METRICS, curve_key, is_collapsed, scores
from hardmine.experiments.reference import irreducible_losses
from hardmine.experiments.strategies import PerSampleLoss, Strategy, cross_entropy
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.policies import IRREDUCIBLE_LOSS, CandidatePolicy
from hardmine.sampling.sampler import HardExampleSampler
from hardmine.scores import signals

DIVERGED_LOSS = 1e4  # a per-sample cross-entropy above this (true-class probability < e^-10000): training blew up
EpochCallback = Callable[[int, float], None]
ModelFactory = Callable[[int], nn.Module]
OptimizerFactory = Callable[..., torch.optim.Optimizer]


@dataclass
class RunOutput:
    """A finished run: `record` holds its numbers (JSON-ready), `arrays` per-sample data for the plots."""

    record: dict
    arrays: dict[str, np.ndarray]
    model: nn.Module


EVAL_BATCH = 256  # samples per evaluation chunk (large chunks of a CNN's activations are slower on a CPU)


class _Evaluator:
    def __init__(self, data: Splits, test_curve: bool) -> None:
        self.x_val, self.y_val = torch.from_numpy(data.x_val), data.y_val
        self.x_test, self.y_test = torch.from_numpy(data.train.x_test), data.train.y_test
        self.num_classes = data.train.num_classes
        self.test_curve = test_curve

    def evaluate(self, model: nn.Module, final: bool = False) -> dict[str, float]:
        """Every metric of METRICS on validation and test, keyed as in a curve ("val_acc", "test_macro_f1", ...);
        the test values are nan between the start and the end of a run without a test curve."""
        point = {}
        for split, x, y in (("val", self.x_val, self.y_val), ("test", self.x_test, self.y_test)):
            if split == "test" and not (self.test_curve or final):
                point.update({curve_key(split, m): float("nan") for m in METRICS})
                continue
            pred = predict(model, x, EVAL_BATCH).argmax(1).numpy()
            point.update({curve_key(split, m): v for m, v in scores(pred, y, self.num_classes).items()})
        return point


class _Diverged(Exception):
    """Training blew up: a per-sample loss is non-finite or above DIVERGED_LOSS."""


def build_optimizer(config: TrainConfig, params: object) -> torch.optim.Optimizer:
    """The optimiser `config.optimizer` ("sgd" with momentum, or "adamw") over `params` at the peak lr."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _val_metrics(curve: dict) -> dict[str, float]:
    """The last point's validation metrics of a curve, keyed as in the curve."""
    return {curve_key("val", m): curve[curve_key("val", m)][-1] for m in METRICS}


_DIAGNOSTICS = ("true_prob",)  # the run's cartography map reads confidence and variability


class _Step:
    """One training step's forward passes and the loss to back-propagate; counts into `cost`."""

    def __init__(self, model: nn.Module, strategy: Strategy, sampler: HardExampleSampler, base: PerSampleLoss,
                 cost: Cost, flipped: np.ndarray | None = None) -> None:
        self.model, self.strategy, self.sampler, self.base, self.cost = model, strategy, sampler, base, cost
        self.flipped = flipped  # bool [N]: the labels the noise option flipped, or None
        self.selected = self.selected_flipped = 0
        # a candidate policy's weights are 1 on the kept: the loss is their mean, not a mean over the candidates
        self.normalize = "weighted" if isinstance(strategy.policy, CandidatePolicy) else "mean"

    def _count_selected(self, idx: np.ndarray, weights: torch.Tensor | None) -> None:
        """Count the samples back-propagated (weight > 0; all when `weights` is None) and the flipped among them."""
        if self.flipped is None:
            return
        kept = idx if weights is None else idx[(weights > 0).numpy()]
        self.selected += kept.size
        self.selected_flipped += int(self.flipped[kept].sum())

    def __call__(self, idx: np.ndarray, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """The loss of the batch (None when nothing is back-propagated)."""
        logits = self.model(x)
        self.cost.forward(idx.size)
        loss_all = self.base(logits, y)
        worst = float(loss_all.detach().max())
        if not worst <= DIVERGED_LOSS:
            raise _Diverged(worst)
        started = time.perf_counter()
        stats = signals(logits.detach(), y, names={*self.sampler.statistics_needed, *_DIAGNOSTICS})
        self.cost.statistics_seconds += time.perf_counter() - started
        self.sampler.update(idx, loss_all.detach(), **stats)
        strategy = self.strategy
        if strategy.loss_mean is None:
            weights = self.sampler.weights(idx)
            self._count_selected(idx, weights)
            return backward_set(self.model, x, y, loss_all, weights, self.normalize, self.base, self.cost)
        clean = self.sampler.selection(idx)  # the guards' per-batch selection: a noise guard leaves out its suspects
        if strategy.selects:
            weights = strategy.selection_weights(logits, y, clean)
            self._count_selected(idx, weights)
            return backward_set(self.model, x, y, loss_all, weights, "weighted", self.base, self.cost)
        if not bool(clean.all()):  # an in-batch loss that keeps every sample: the guards' selection only
            if not bool(clean.any()):
                return None
            self._count_selected(idx, clean.float())
            self.cost.backward(idx.size)  # the graph is the whole batch's
            return strategy.loss_mean(logits[clean], y[clean])
        self._count_selected(idx, None)
        self.cost.backward(idx.size)
        return strategy.loss_mean(logits, y)


def train_run(data: Splits, strategy: Strategy, seed: int, config: TrainConfig, make_model: ModelFactory,
              base_loss: PerSampleLoss | None = None, make_optimizer: OptimizerFactory | None = None,
              slices: np.ndarray | None = None, on_epoch: EpochCallback | None = None,
              flipped: np.ndarray | None = None, lr_factor: float = 1.0) -> RunOutput:
    """Train `make_model(seed)` on `data` with `strategy`, seeded by `seed` (torch's generator is seeded before
    the factory is called; the sampler and the augmentation are seeded from it too).

    base_loss: per-sample loss (default cross-entropy). make_optimizer(params) -> Optimizer: default from `config`;
    the schedule scales every parameter group's own learning rate. slices: difficulty slice id [M] of each test
    sample. on_epoch(epoch, validation accuracy) is called after each epoch (for a progress bar). flipped: the
    training indices whose labels the noise option flipped (for `selected_flipped_share`), or None. lr_factor:
    every peak learning rate (config's, or each of the optimiser's parameter groups') times this (tuning).
    A strategy with a reference (rho_loss) first trains it (`hardmine.experiments.reference`); its cost is counted
    in the run's forwards and backwards (and `reference_compute`) before the first step.
    The record holds: final test accuracy, macro-F1, per-class recall, slice accuracy; the curve of validation and
    test accuracy against epochs, forwards, backwards, compute (forwards + 2 backwards), training seconds and
    hardmine's seconds (the curve also holds balanced accuracy and macro-F1 on both splits: "val_balanced_accuracy",
    "test_macro_f1", ...); the totals; the number of the guards' label-noise suspects; `diverged`: None, or the
    epoch and loss where training blew up; `collapsed`: the final test predictions are all one class or at chance.
    """
    torch.set_num_threads(config.threads)
    torch.manual_seed(seed)
    model = make_model(seed)
    optimizer = (make_optimizer or (lambda p: build_optimizer(config, p)))(model.parameters())
    for group in optimizer.param_groups:
        group["hardmine_peak_lr"] = group["lr"] * lr_factor
    train = data.train
    x_train, y_train = torch.from_numpy(train.x_train), torch.from_numpy(train.y_train)
    memory = ScoreMemory(len(y_train), labels=train.y_train)
    cost = Cost()
    if strategy.reference is not None:
        losses, forwards, backwards = irreducible_losses(
            strategy.reference, train.x_train, train.y_train, data.x_val, data.y_val, lambda: make_model(seed),
            make_optimizer or (lambda p: build_optimizer(config, p)), base_loss or cross_entropy, config.batch_size,
            seed)
        memory.declare(IRREDUCIBLE_LOSS)
        memory.set(IRREDUCIBLE_LOSS.name, losses)
        cost.forward(forwards)
        cost.backward(backwards)
    reference_compute = cost.compute
    sampler = HardExampleSampler(memory, config.batch_size, policy=strategy.policy, seed=seed)
    generator = torch.Generator().manual_seed(seed + 7_777)
    evaluator = _Evaluator(data, config.test_curve)
    curve = {"epoch": [0.0], **cost.point(sampler), **{k: [v] for k, v in evaluator.evaluate(model, True).items()}}
    model.train()
    diverged = None
    mask = None
    if flipped is not None:
        mask = np.zeros(len(y_train), dtype=bool)
        mask[flipped] = True
    step = _Step(model, strategy, sampler, base_loss or cross_entropy, cost, mask)
    try:
        _epochs(step, optimizer, x_train, y_train, config, evaluator, curve, on_epoch, generator)
    except _Diverged as err:
        diverged = {"epoch": cost.position, "loss": err.args[0]}
    if not config.test_curve:
        for key, value in evaluator.evaluate(step.model, final=True).items():
            if key.startswith("test_"):
                curve[key][-1] = value
    output = _finish(data, strategy, seed, model, memory, sampler, curve, slices, cost, diverged)
    output.record["reference_compute"] = reference_compute
    output.record["selected_flipped_share"] = step.selected_flipped / step.selected if step.selected else None
    return output


def _epochs(step: _Step, optimizer: torch.optim.Optimizer, x_train: torch.Tensor, y_train: torch.Tensor,
            config: TrainConfig, evaluator: _Evaluator, curve: dict, on_epoch: EpochCallback | None,
            generator: torch.Generator) -> None:
    """The training epochs; appends to `curve` and counts into `step.cost` (position: the epoch, with the
    fraction of it done, which also drives the learning-rate schedule)."""
    sampler, cost = step.sampler, step.cost
    global_step = 0
    for epoch in range(config.epochs):
        sampler.set_epoch(epoch)
        batches = iter(sampler)
        k, steps, eval_at = 0, 1, set()
        while True:
            started = time.perf_counter()
            idx = next(batches, None)
            if idx is None:
                break
            if k == 0:  # the policy and its guards decide the epoch (its length, the suspects) at the first draw
                steps = len(sampler)
                eval_at = {round(steps * (j + 1) / config.evals_per_epoch) - 1 for j in range(config.evals_per_epoch)}
            cost.position = epoch + k / steps
            factor = config.lr_factor(cost.position, global_step)
            for group in optimizer.param_groups:
                group["lr"] = group["hardmine_peak_lr"] * factor
            x = x_train[idx]
            if config.augment:
                x = augment_images(x, generator)
            loss = step(idx, x, y_train[idx])
            if loss is not None:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            cost.seconds += time.perf_counter() - started
            if k in eval_at:
                curve["epoch"].append(epoch + (k + 1) / steps)
                for key, value in cost.point(sampler).items():
                    curve[key].append(value[0])
                for key, value in evaluator.evaluate(step.model).items():
                    curve[key].append(value)
            k += 1
            global_step += 1
        if on_epoch is not None:
            on_epoch(epoch, curve["val_acc"][-1])


def _finish(data: Splits, strategy: Strategy, seed: int, model: nn.Module, memory: ScoreMemory,
            sampler: HardExampleSampler, curve: dict, slices: np.ndarray | None, cost: Cost,
            diverged: dict | None) -> RunOutput:
    train = data.train
    pred = predict(model, torch.from_numpy(train.x_test), EVAL_BATCH).argmax(1).numpy()
    y = train.y_test
    sampler_stats = sampler.stats()
    hardmine_seconds = sampler_stats["mining_seconds"] + cost.statistics_seconds
    suspects = strategy.suspects()
    balanced = scores(pred, y, train.num_classes)["balanced_accuracy"]
    record = {
        "strategy": strategy.label,
        "seed": seed,
        "test_acc": float((pred == y).mean()),
        "test_balanced_accuracy": balanced,
        "val_acc": curve["val_acc"][-1],
        **_val_metrics(curve),
        "macro_f1": macro_f1(pred, y, train.num_classes),
        "per_class_recall": per_class_recall(pred, y, train.num_classes).tolist(),
        "slice_acc": None if slices is None else slice_accuracy(pred, y, slices).tolist(),
        "curve": curve,
        **cost.totals(),
        "train_seconds": cost.seconds,
        "hardmine_seconds": hardmine_seconds,
        "sampler_seconds": sampler_stats["mining_seconds"],
        "statistics_seconds": cost.statistics_seconds,
        "hardmine_fraction": hardmine_seconds / cost.seconds if cost.seconds > 0 else float("nan"),
        "num_suspects": None if suspects is None else int(suspects.size),
        "diverged": diverged,
        "collapsed": is_collapsed(pred, y, train.num_classes),
        "sampler_stats": {k: float(v) for k, v in sampler_stats.items()},
    }
    arrays = {"confidence": memory.get("confidence"), "variability": memory.get("variability")}
    if suspects is not None:
        arrays["suspects"] = suspects
    return RunOutput(record, arrays, model)
