"""One run on digits: seeded, scores the noise guard's suspects, schedules, optimisers, augmentation, divergence."""

import math
from typing import ClassVar

import numpy as np
import pytest
import torch

from hardmine.datasets.digits import load_digits
from hardmine.experiments.augment import augment_images
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import flip_labels, split_validation
from hardmine.experiments.models import build_model
from hardmine.experiments.spec import parse_spec
from hardmine.experiments.strategies import build_strategy
from hardmine.experiments.train import train_run

CONFIG = TrainConfig(epochs=2, evals_per_epoch=2)


@pytest.fixture(scope="module")
def digits():
    return split_validation(load_digits(), 0.1, seed=0)


def mlp(seed):
    return build_model("mlp", (1, 8, 8), 10, 64)


def run(data, text, seed=0, config=CONFIG, **kwargs):
    return train_run(data, build_strategy(parse_spec(text)), seed, config, mlp, **kwargs)


def test_same_seed_same_run_other_seed_other_run(digits):
    a, b, c = run(digits, "importance"), run(digits, "importance"), run(digits, "importance", seed=1)
    assert a.record["curve"]["val_acc"] == b.record["curve"]["val_acc"]
    assert a.record["test_acc"] == b.record["test_acc"]
    assert np.array_equal(a.arrays["confidence"], b.arrays["confidence"], equal_nan=True)
    assert a.record["curve"]["val_acc"] != c.record["curve"]["val_acc"]
    record = a.record
    assert record["sampler_seconds"] + record["statistics_seconds"] == pytest.approx(record["hardmine_seconds"])
    assert record["curve"]["hardmine_seconds"][-1] == pytest.approx(record["hardmine_seconds"])
    assert 0 < record["hardmine_seconds"] < record["train_seconds"]


def test_noise_guard_suspects_are_returned(digits):
    noisy, noise = flip_labels(digits.train, 0.2, seed=0)
    data = split_validation(load_digits(), 0.1, seed=0).__class__(noisy, digits.x_val, digits.y_val)
    output = run(data, "ohem+noise_guard", config=TrainConfig(epochs=5))
    suspects = output.arrays["suspects"]
    assert output.record["num_suspects"] == suspects.size > 0
    assert np.intersect1d(suspects, noise.flipped).size > 0.5 * suspects.size  # most suspects were flipped
    assert "suspects" not in run(data, "ohem").arrays


def test_a_run_that_blows_up_is_recorded_as_diverged(digits):
    output = run(digits, "uniform", config=TrainConfig(epochs=3, lr=1e6, momentum=0.0, schedule="constant"))
    diverged = output.record["diverged"]
    assert diverged is not None and diverged["epoch"] < 3 and not diverged["loss"] <= 1e4
    assert run(digits, "uniform").record["diverged"] is None


@pytest.mark.parametrize("schedule, middle, end", [("constant", 1.0, 1.0), ("cosine", 0.5, 0.0),
                                                  ("step", 0.1, 0.01)])
def test_schedules_follow_the_fraction_of_the_run(schedule, middle, end):
    config = TrainConfig(epochs=4, schedule=schedule)
    assert config.lr_factor(0.0, 100) == 1.0
    assert config.lr_factor(2.0, 100) == pytest.approx(middle)
    assert config.lr_factor(4.0, 100) == pytest.approx(end, abs=1e-12)
    warm = TrainConfig(epochs=4, schedule=schedule, warmup_steps=10)
    assert warm.lr_factor(0.0, 0) == pytest.approx(0.1) and warm.lr_factor(0.0, 9) == 1.0


class RecordingSGD(torch.optim.SGD):
    """SGD that records the learning rate of every step."""

    rates: ClassVar[list[float]] = []

    def step(self, closure=None):
        RecordingSGD.rates.append(self.param_groups[0]["lr"])
        return super().step(closure)


def test_shrinking_epochs_keep_the_schedule_aligned(digits):
    RecordingSGD.rates = []
    config = TrainConfig(epochs=3, schedule="cosine")
    output = run(digits, "prune_easy", config=config, make_optimizer=lambda p: RecordingSGD(p, lr=0.1))
    rates = RecordingSGD.rates
    steps = math.ceil(digits.train.y_train.size / config.batch_size)
    assert len(rates) < 3 * steps  # prune_easy's later epochs are shorter
    assert rates[0] == pytest.approx(0.1) and np.all(np.diff(rates) <= 1e-12)
    assert rates[-1] < 0.1 * 0.5 * (1 + math.cos(math.pi * (3 * steps - 2) / (3 * steps)))  # it reached the end
    assert output.record["curve"]["epoch"][-1] == pytest.approx(3.0)


def test_adamw_and_augmentation_run_and_differ_from_sgd(digits):
    sgd = run(digits, "uniform").record
    adamw = run(digits, "uniform", config=TrainConfig(epochs=2, evals_per_epoch=2, optimizer="adamw", lr=1e-2)).record
    augmented = run(digits, "uniform", config=TrainConfig(epochs=2, evals_per_epoch=2, augment=True)).record
    assert adamw["test_acc"] > 0.5  # (2-pixel shifts and flips of 8x8 digits are too hard to learn in 2 epochs)
    assert adamw["curve"]["val_acc"] != sgd["curve"]["val_acc"] != augmented["curve"]["val_acc"]


def test_augmentation_shifts_and_flips_each_image():
    x = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5) + 1
    out = augment_images(x, torch.Generator().manual_seed(0), shift=1)
    assert out.shape == x.shape
    for image, source in zip(out, x):
        found = False
        for flipped in (source, source.flip(-1)):
            padded = torch.nn.functional.pad(flipped, (1, 1, 1, 1))
            for dy in range(3):
                for dx in range(3):
                    found |= torch.equal(image, padded[:, dy:dy + 5, dx:dx + 5])
        assert found
    with pytest.raises(ValueError, match="image batches"):
        augment_images(torch.ones(3, 4), torch.Generator())


def test_without_a_test_curve_the_test_set_is_evaluated_at_the_start_and_the_end(digits):
    record = run(digits, "uniform", config=TrainConfig(epochs=2, evals_per_epoch=2, test_curve=False)).record
    test = record["curve"]["test_acc"]
    assert math.isfinite(test[0]) and test[-1] == record["test_acc"]
    assert all(math.isnan(v) for v in test[1:-1]) and all(math.isfinite(v) for v in record["curve"]["val_acc"])
    assert record["test_acc"] == run(digits, "uniform").record["test_acc"]  # the same training either way


def test_a_run_predicting_one_class_is_recorded_as_collapsed(digits):
    def constant(seed):
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
        with torch.no_grad():
            model[1].weight.zero_()
            model[1].bias.copy_(torch.arange(10, dtype=torch.float32) * -10.0)  # class 0 everywhere
        return model

    output = train_run(digits, build_strategy(parse_spec("uniform")), 0,
                       TrainConfig(epochs=1, lr=1e-9, momentum=0.0), constant)
    assert output.record["collapsed"] is True and output.record["diverged"] is None
    assert output.record["test_balanced_accuracy"] == pytest.approx(0.1)
    assert run(digits, "uniform").record["collapsed"] is False
    curve = run(digits, "uniform").record["curve"]
    for key in ("val_acc", "val_balanced_accuracy", "val_macro_f1", "test_acc", "test_balanced_accuracy",
                "test_macro_f1"):
        assert len(curve[key]) == len(curve["compute"])


def test_lr_factor_scales_the_peak_learning_rate(digits):
    slow = run(digits, "uniform", config=TrainConfig(epochs=1, lr=0.5, schedule="constant"), lr_factor=0.0001)
    fast = run(digits, "uniform", config=TrainConfig(epochs=1, lr=0.00005, schedule="constant"))
    assert slow.record["curve"]["val_acc"] == fast.record["curve"]["val_acc"]
