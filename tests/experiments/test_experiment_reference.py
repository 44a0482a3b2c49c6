"""rho_loss and online_top_loss in compare: the reference spec, its cost in the strategy's compute, the flipped
share of back-propagated samples."""

import numpy as np
import pytest
from torch import nn

import hardmine as hm
from hardmine.datasets.tabular import LabeledData
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import Splits
from hardmine.experiments.reference import ReferenceSpec
from hardmine.experiments.spec import parse_spec
from hardmine.experiments.strategies import build_strategy
from hardmine.experiments.train import train_run

N, V, B, EPOCHS = 48, 12, 8, 2


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N + V + 6, 4)).astype(np.float32)
    y = (np.arange(N + V + 6) % 3).astype(np.int64)
    train = LabeledData("tiny", x[:N], y[:N], x[N:N + 6], y[N:N + 6], ("a", "b", "c"))
    return Splits(train, x[N + 6:], y[N + 6:])


def run(data, text, flipped=None):
    config = TrainConfig(epochs=EPOCHS, batch_size=B, evals_per_epoch=2, schedule="constant")
    return train_run(data, build_strategy(parse_spec(text)), 0, config, lambda seed: nn.Linear(4, 3),
                     flipped=flipped).record


def test_the_spec_names_the_reference_and_the_policy_gets_the_rest():
    strategy = build_strategy(parse_spec("rho_loss:candidates=3,reference=crossfit,reference_epochs=2"))
    assert strategy.reference == ReferenceSpec("crossfit", 2)
    assert isinstance(strategy.policy, hm.RhoLossPolicy) and strategy.policy.candidates == 3
    assert build_strategy(parse_spec("rho_loss")).reference == ReferenceSpec("holdout", 5)
    assert build_strategy(parse_spec("online_top_loss")).reference is None
    with pytest.raises(ValueError, match=r"strategy 'rho_loss': reference must be one of \['holdout', 'crossfit'\]"):
        build_strategy(parse_spec("rho_loss:reference=clean"))
    with pytest.raises(ValueError, match="reference_epochs must be an integer >= 1, got 0"):
        build_strategy(parse_spec("rho_loss:reference_epochs=0"))
    with pytest.raises(ValueError, match="irreducible_loss comes from reference"):
        build_strategy(parse_spec("rho_loss:irreducible_loss=1"))
    with pytest.raises(ValueError, match="unknown parameter 'reference' for strategy 'online_top_loss'"):
        build_strategy(parse_spec("online_top_loss:reference=holdout"))


@pytest.mark.parametrize("reference, forwards, backwards", [
    ("holdout", 1 * V + N, 1 * V),      # one epoch on the validation split, one scoring pass over the training part
    ("crossfit", 1 * N + N, 1 * N),     # one epoch on each half, one scoring pass
])
def test_the_reference_cost_is_part_of_the_strategy_compute(tiny, reference, forwards, backwards):
    plain = run(tiny, "online_top_loss:candidates=2")
    rho = run(tiny, f"rho_loss:candidates=2,reference={reference},reference_epochs=1")
    assert rho["forwards"] - plain["forwards"] == forwards  # same candidate batches, B kept each step
    assert rho["backwards"] - plain["backwards"] == backwards
    assert rho["reference_compute"] == forwards + 2 * backwards
    assert rho["curve"]["compute"][0] == forwards + 2 * backwards  # spent before the first step
    steps = EPOCHS * N // B
    assert plain["forwards"] == steps * (2 * B + B) and plain["backwards"] == steps * B  # score 2B, re-forward B


def test_the_flipped_share_of_backpropagated_samples_is_recorded(tiny):
    flipped = np.arange(0, N, 4)  # a quarter of the labels
    assert run(tiny, "uniform", flipped)["selected_flipped_share"] == pytest.approx(0.25)  # every sample, each epoch
    share = run(tiny, "online_top_loss:candidates=2", flipped)["selected_flipped_share"]
    assert 0.0 <= share <= 1.0
    assert run(tiny, "uniform")["selected_flipped_share"] is None
