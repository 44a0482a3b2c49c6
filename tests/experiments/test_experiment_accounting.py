"""Compute accounting on a tiny model: forwards and backwards against hand counts and against what the model saw."""

import numpy as np
import pytest
import torch
from torch import nn

from hardmine.datasets.tabular import LabeledData
from hardmine.experiments.accounting import Cost, backward_set
from hardmine.experiments.config import TrainConfig
from hardmine.experiments.data import Splits
from hardmine.experiments.spec import parse_spec
from hardmine.experiments.strategies import build_strategy, cross_entropy
from hardmine.experiments.train import train_run

N, B, EPOCHS = 48, 8, 3


class Counted(nn.Module):
    """A linear model that counts the samples it forwards with gradient and the samples each backward reaches."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.forwarded = 0
        self.backwarded = 0

    def forward(self, x):
        out = self.linear(x)
        if torch.is_grad_enabled():  # training passes; evaluations run without gradient
            self.forwarded += x.shape[0]
            out.register_hook(self._count_backward)
        return out

    def _count_backward(self, grad):
        self.backwarded += grad.shape[0]


@pytest.fixture(scope="module")
def tiny():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N + 12, 4)).astype(np.float32)
    y = (np.arange(N + 12) % 3).astype(np.int64)
    train = LabeledData("tiny", x[:N], y[:N], x[N:N + 6], y[N:N + 6], ("a", "b", "c"))
    return Splits(train, x[N + 6:], y[N + 6:])


def run(data, text):
    models = []

    def make(seed):
        models.append(Counted())
        return models[-1]

    config = TrainConfig(epochs=EPOCHS, batch_size=B, evals_per_epoch=2, schedule="constant")
    record = train_run(data, build_strategy(parse_spec(text)), 0, config, make).record
    return record, models[0]


@pytest.mark.parametrize("text, forwards, backwards", [
    ("uniform", EPOCHS * N, EPOCHS * N),
    ("focal", EPOCHS * N, EPOCHS * N),
    ("ohem:keep=0.5", EPOCHS * N * 3 // 2, EPOCHS * N // 2),  # 4 of 8 kept < 2/3: re-forwarded, only they backward
    ("ohem:keep=0.75", EPOCHS * N, EPOCHS * N),  # 6 of 8 kept >= 2/3: the whole batch's graph, counted in full
])
def test_hand_counts(tiny, text, forwards, backwards):
    record, model = run(tiny, text)
    assert (record["forwards"], record["backwards"]) == (forwards, backwards)
    assert record["compute"] == forwards + 2 * backwards
    assert (model.forwarded, model.backwarded) == (forwards, backwards)
    curve = record["curve"]
    assert curve["forwards"][0] == 0 and curve["forwards"][-1] == forwards and curve["backwards"][-1] == backwards
    assert curve["compute"] == [f + 2 * b for f, b in zip(curve["forwards"], curve["backwards"])]
    assert len(curve["compute"]) == 1 + EPOCHS * 2


@pytest.mark.parametrize("text", ["selective_backprop", "prune_easy", "ohem:keep=0.5+noise_guard:min_visits=1"])
def test_counts_match_what_the_model_computed(tiny, text):
    record, model = run(tiny, text)
    assert (record["forwards"], record["backwards"]) == (model.forwarded, model.backwarded)
    assert record["backwards"] < EPOCHS * N


def test_selective_backprop_counts_its_re_forward(tiny):
    record, _ = run(tiny, "selective_backprop")
    scored = EPOCHS * N  # every batch is scored once
    re_forwarded = record["forwards"] - scored
    assert re_forwarded > 0 and re_forwarded <= record["backwards"]
    # each batch either re-forwards its k kept (forwards +k, backwards +k) or back-propagates all B
    assert (record["backwards"] - re_forwarded) % B == 0


def test_prune_easy_counts_its_shorter_epochs(tiny):
    record, _ = run(tiny, "prune_easy")
    assert record["forwards"] == record["backwards"] < EPOCHS * N
    steps = np.diff(record["curve"]["forwards"])
    assert np.all(steps > 0)


def test_backward_set_counts_and_normalizes():
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    x, y = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
    loss_all = cross_entropy(model(x), y)
    cost = Cost()
    weights = torch.tensor([0.0, 2.0, 0.0, 0.0, 1.0, 0.0])  # 2 of 6 < 2/3: re-forward
    loss = backward_set(model, x, y, loss_all, weights, "mean", cross_entropy, cost)
    expected = (2 * loss_all[1] + loss_all[4]) / 6
    assert loss.item() == pytest.approx(expected.item()) and (cost.forwards, cost.backwards) == (2, 2)
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # 4 of 6 = 2/3: the whole graph
    loss = backward_set(model, x, y, loss_all, weights, "weighted", cross_entropy, cost)
    assert loss.item() == pytest.approx(loss_all[:4].mean().item()) and cost.backwards == 2 + 6
    assert backward_set(model, x, y, loss_all, torch.zeros(6), "mean", cross_entropy, cost) is None
    assert cost.totals() == {"forwards": 2, "backwards": 8, "compute": 18}


def _user_loss(name, trims):
    """A user's in-batch loss registered as `name`: cross-entropy of the top quarter of the batch (selects=True),
    or the same quarter up-weighted 4x with every sample kept (selects=False)."""
    from hardmine.inbatch import InBatchLoss

    class UserLoss(InBatchLoss):
        selects = trims

        def __init__(self, base_loss, reduction="mean"):
            super().__init__(reduction)
            self.base_loss = base_loss

        def forward(self, logits, target):
            if not bool(torch.isfinite(logits).all()):
                raise ValueError("logits has non-finite values")
            loss = self.base_loss(logits, target)
            top = torch.zeros_like(loss).index_fill(0, loss.detach().topk(max(1, loss.numel() // 4)).indices, 1.0)
            out = loss * top if self.selects else loss * (1 + 3 * top)
            return {"none": out, "sum": out.sum(), "mean": out.sum() / (top.sum() if self.selects else out.numel())
                    }[self.reduction]

    UserLoss.__qualname__ = f"UserLoss_{name}"
    return UserLoss


@pytest.fixture
def user_losses():
    from hardmine.inbatch.losses import LOSSES

    names = {"user_top_quarter": True, "user_upweight_quarter": False}
    for name, selects in names.items():
        LOSSES.add(name, _user_loss(name, selects))
    yield names
    for name in names:
        LOSSES._items.pop(name)


def test_a_user_loss_declares_whether_it_selects_and_compare_counts_from_it(tiny, user_losses):
    """compare counts compute from the loss's declaration, not its class: a user's loss that keeps the top
    quarter (2 of 8 < 2/3) is re-forwarded and only the kept samples back-propagated; one that keeps all is
    counted in full."""
    from hardmine import testing
    from hardmine.inbatch.losses import LOSSES

    for name in user_losses:
        testing.check_inbatch_loss(LOSSES[name])
    record, model = run(tiny, "user_top_quarter")
    assert (record["forwards"], record["backwards"]) == (EPOCHS * N * 5 // 4, EPOCHS * N // 4)
    assert (model.forwarded, model.backwarded) == (record["forwards"], record["backwards"])
    record, model = run(tiny, "user_upweight_quarter")
    assert (record["forwards"], record["backwards"]) == (EPOCHS * N, EPOCHS * N)
    assert (model.forwarded, model.backwarded) == (record["forwards"], record["backwards"])


def test_compare_refuses_a_loss_that_does_not_declare_whether_it_selects():
    from hardmine.inbatch.losses import LOSSES

    LOSSES.add("user_undeclared", nn.Module)
    try:
        with pytest.raises(ValueError, match="does not declare whether it selects samples"):
            build_strategy(parse_spec("user_undeclared"))
    finally:
        LOSSES._items.pop("user_undeclared")
