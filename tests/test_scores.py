"""Difficulty signals: each against its formula computed by hand, no gradient, and bad input."""

import math

import pytest
import torch

from hardmine import scores


@pytest.fixture
def batch():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 1.0]], requires_grad=True)
    return logits, torch.tensor([0, 0, 2])


def test_each_scorer_matches_its_formula(batch):
    logits, targets = batch
    p = torch.softmax(logits.detach(), 1)
    onehot = torch.nn.functional.one_hot(targets, 3).float()
    torch.testing.assert_close(scores.cross_entropy(logits, targets), -torch.log(p[torch.arange(3), targets]))
    torch.testing.assert_close(scores.margin(logits, targets), torch.tensor([-1.0, 3.0, 0.0]))
    torch.testing.assert_close(scores.one_minus_confidence(logits, targets), 1 - p[torch.arange(3), targets])
    torch.testing.assert_close(scores.entropy(logits), -(p * p.log()).sum(1))
    assert scores.entropy(logits)[2].item() == pytest.approx(math.log(3))
    torch.testing.assert_close(scores.el2n(logits, targets), (p - onehot).norm(dim=1))
    features = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    torch.testing.assert_close(scores.grad_norm_bound(logits, targets, features),
                               (p - onehot).norm(dim=1) * torch.tensor([5.0, 1.0, 2.0]))


def test_grad_norm_bound_is_the_true_last_layer_gradient_norm():
    torch.manual_seed(0)
    h, layer, y = torch.randn(4, 5), torch.nn.Linear(5, 3, bias=False), torch.tensor([0, 1, 2, 1])
    bound = scores.grad_norm_bound(layer(h), y, h)
    for i in range(4):
        layer.zero_grad()
        torch.nn.functional.cross_entropy(layer(h[i: i + 1]), y[i: i + 1]).backward()
        assert layer.weight.grad.norm().item() == pytest.approx(bound[i].item(), rel=1e-5)


def test_higher_means_harder_and_no_gradient_flows(batch):
    logits, targets = batch
    scorers = {"loss": scores.cross_entropy, "margin": scores.margin, "confidence": scores.one_minus_confidence,
               "entropy": scores.entropy, "el2n": scores.el2n, "grad_norm": scores.grad_norm_bound}
    for name, scorer in scorers.items():
        value = scorer(logits, targets)
        assert not value.requires_grad, name
        if name != "entropy":
            assert value[1] > value[0], name  # sample 1 is confidently wrong, sample 0 right


def test_statistics_for_the_memory(batch):
    logits, targets = batch
    stats = scores.signals(logits, targets)
    assert stats["correct"].tolist() == [True, False, False]  # argmax of a tie is its first class
    torch.testing.assert_close(stats["margin"], -scores.margin(logits, targets))
    torch.testing.assert_close(stats["true_prob"], 1 - scores.one_minus_confidence(logits, targets))


@pytest.mark.parametrize(
    "logits, targets, error, match",
    [(torch.zeros(2, 3, dtype=torch.int64), torch.zeros(2, dtype=torch.int64), TypeError, "logits"),
     (torch.zeros(2), torch.zeros(2, dtype=torch.int64), ValueError, r"shape \[B, C\]"),
     (torch.tensor([[0.0, math.nan]]), torch.zeros(1, dtype=torch.int64), ValueError, "NaN"),
     (torch.zeros(2, 3), torch.zeros(3, dtype=torch.int64), ValueError, "targets must have shape"),
     (torch.zeros(2, 3), torch.tensor([0, 3]), ValueError, r"class ids in \[0, 3\)"),
     (torch.zeros(2, 3), torch.zeros(2), TypeError, "integer")],
)
def test_bad_input(logits, targets, error, match):
    with pytest.raises(error, match=match):
        scores.margin(logits, targets)


def test_signals_old_names_warn_and_are_the_same():
    with pytest.warns(DeprecationWarning, match="scores.statistics is deprecated: use `hardmine.scores.signals`"):
        assert scores.statistics is scores.signals
    with pytest.warns(DeprecationWarning, match="use `hardmine.scores.SIGNALS`"):
        assert scores.STATISTICS == ("true_prob", "correct", "margin")
