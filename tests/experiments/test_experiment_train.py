"""One run on digits: seeded, counts backprops of selective strategies, and scores the noise guard's suspects."""

import numpy as np
import pytest

from hardmine.datasets.digits import load_digits
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import flip_labels
from hardmine.experiments.spec import parse_spec
from hardmine.experiments.strategies import build_strategy
from hardmine.experiments.train import train_run

CONFIG = TrainConfig(epochs=2, evals_per_epoch=2)


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def run(data, text, seed=0, config=CONFIG):
    return train_run(data, build_strategy(parse_spec(text)), seed, config)


def test_same_seed_same_run_other_seed_other_run(digits):
    a, b, c = run(digits, "importance"), run(digits, "importance"), run(digits, "importance", seed=1)
    assert a.record["curve"]["test_acc"] == b.record["curve"]["test_acc"]
    assert a.record["test_acc"] == b.record["test_acc"]
    assert np.array_equal(a.arrays["confidence"], b.arrays["confidence"], equal_nan=True)
    assert a.record["curve"]["test_acc"] != c.record["curve"]["test_acc"]


def test_selective_backprop_counts_only_back_propagated_samples(digits):
    record = run(digits, "selective_backprop").record
    n = digits.y_train.size
    assert 0 < record["backprops"] < 2 * n
    assert record["curve"]["backprops"][-1] == record["backprops"]
    assert record["sampler_seconds"] + record["statistics_seconds"] == pytest.approx(record["hardmine_seconds"])


def test_noise_guard_suspects_are_returned(digits):
    noisy, noise = flip_labels(digits, 0.2, seed=0)
    output = run(noisy, "ohem+noise_guard", config=TrainConfig(epochs=5))
    suspects = output.arrays["suspects"]
    assert output.record["num_suspects"] == suspects.size > 0
    assert np.intersect1d(suspects, noise.flipped).size > 0.5 * suspects.size  # most suspects were flipped
    assert "suspects" not in run(noisy, "ohem").arrays


def test_a_run_that_blows_up_is_recorded_as_diverged(digits):
    output = run(digits, "uniform", config=TrainConfig(epochs=3, lr=1e6, momentum=0.0))
    diverged = output.record["diverged"]
    assert diverged is not None and diverged["epoch"] < 3 and not diverged["loss"] <= 1e4
    assert run(digits, "uniform").record["diverged"] is None
