"""class_weighted and logit_adjusted: the practitioner's losses for class imbalance, built from class counts.
Values against formulas written out here, on real digits logits; bad input refused by name before any use."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hardmine as hm
from hardmine.datasets.digits import load_digits
from hardmine.inbatch.class_counts import check_class_counts

COUNTS = [500, 120, 40, 10]


@pytest.fixture(scope="module")
def digits_batch():
    """Logits of a random linear model on 64 digits of classes 0-3, and their labels."""
    data = load_digits()
    keep = np.flatnonzero(data.y_train < 4)[:64]
    x = torch.from_numpy(data.x_train[keep]).flatten(1)
    model = nn.Linear(64, 4)
    torch.manual_seed(0)
    nn.init.normal_(model.weight, std=0.1)
    return model(x).detach().double(), torch.from_numpy(data.y_train[keep]).long()


def test_class_weighted_weights_are_inverse_frequency_with_mean_one(digits_batch):
    logits, y = digits_batch
    loss = hm.ClassWeightedLoss(COUNTS, reduction="none")
    counts = np.array(COUNTS, dtype=float)
    expected_w = counts.sum() / (4 * counts)
    np.testing.assert_allclose(loss.class_weight.numpy(), expected_w, rtol=1e-6)
    assert (counts / counts.sum() * loss.class_weight.numpy()).sum() == pytest.approx(1.0, rel=1e-6)
    ce = F.cross_entropy(logits, y, reduction="none")
    w = torch.from_numpy(expected_w)[y]
    assert torch.allclose(loss(logits, y), ce * w, rtol=1e-6)
    assert hm.ClassWeightedLoss(COUNTS)(logits, y).item() == pytest.approx((ce * w).mean().item(), rel=1e-6)
    assert hm.ClassWeightedLoss(COUNTS, reduction="sum")(logits, y).item() == pytest.approx((ce * w).sum().item(),
                                                                                            rel=1e-6)


def test_class_weighted_wraps_a_base_loss_and_back_propagates():
    logits = torch.randn(8, 4, requires_grad=True)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 3, 0])
    smooth = nn.CrossEntropyLoss(reduction="none", label_smoothing=0.1)
    loss = hm.ClassWeightedLoss(COUNTS, base_loss=smooth)(logits, y)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    rare, frequent = logits.grad[6].abs().sum(), logits.grad[0].abs().sum()
    assert rare > frequent  # weight 16.75 against 0.335
    with pytest.raises(ValueError, match="reduction='none'"):
        hm.ClassWeightedLoss(COUNTS, base_loss=nn.CrossEntropyLoss())


def test_logit_adjusted_is_cross_entropy_on_logits_plus_tau_log_prior(digits_batch):
    logits, y = digits_batch
    prior = torch.tensor(COUNTS, dtype=torch.float64) / sum(COUNTS)
    for tau in (1.0, 0.5, 2.0):
        expected = F.cross_entropy(logits + tau * prior.log(), y, reduction="none")
        got = hm.LogitAdjustedLoss(COUNTS, tau=tau, reduction="none")(logits, y)
        assert torch.allclose(got, expected, rtol=1e-5)
    assert hm.LogitAdjustedLoss(COUNTS, tau=0.0)(logits, y).item() == pytest.approx(
        F.cross_entropy(logits, y).item(), rel=1e-6)


def test_logit_adjustment_puts_a_margin_on_the_frequent_classes():
    # equal logits: plain cross-entropy is ln 4 for every class; adjusted, a rare class's loss is larger (its
    # logit must beat the frequent classes' prior), a frequent class's smaller
    logits = torch.zeros(4, 4)
    loss = hm.LogitAdjustedLoss(COUNTS, reduction="none")(logits, torch.arange(4))
    assert loss[3] > math.log(4) > loss[0]
    assert torch.all(loss[1:] > loss[:-1])


def test_a_class_without_samples_is_never_predicted_and_its_targets_are_refused():
    counts = [30, 0, 10]
    logits = torch.randn(5, 3, requires_grad=True)
    y = torch.tensor([0, 2, 0, 2, 2])
    for loss in (hm.LogitAdjustedLoss(counts), hm.ClassWeightedLoss(counts)):
        value = loss(logits, y)
        assert torch.isfinite(value)
        (grad,) = torch.autograd.grad(value, logits)
        assert torch.isfinite(grad).all()
        with pytest.raises(ValueError, match=r"target holds label 1, whose class_counts\[1\] is 0"):
            loss(logits, torch.tensor([0, 1, 2, 0, 0]))
    assert hm.LogitAdjustedLoss(counts).adjustment[1] == float("-inf")


@pytest.mark.parametrize("make", [lambda: hm.LogitAdjustedLoss([5, 5]), lambda: hm.ClassWeightedLoss([5, 5])])
def test_a_label_beyond_the_counts_is_refused_by_name(make):
    with pytest.raises(ValueError, match=r"target holds label 2, outside the 2 classes of class_counts"):
        make()(torch.randn(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"target holds label -1"):
        make()(torch.randn(3, 2), torch.tensor([0, 1, -1]))
    with pytest.raises(TypeError, match="integer class targets"):
        make()(torch.randn(3, 2), torch.tensor([0.0, 1.0, 1.0]))


def test_logit_adjusted_needs_one_logit_per_counted_class():
    with pytest.raises(ValueError, match=r"logits must be floating point \[B, 2, \*\].*got shape \(3, 3\)"):
        hm.LogitAdjustedLoss([5, 5])(torch.randn(3, 3), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="non-finite"):
        hm.LogitAdjustedLoss([5, 5])(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))


@pytest.mark.parametrize("counts, error, message", [
    ([3, -1, 2], ValueError, r"class_counts must be >= 0, got class_counts\[1\] = -1"),
    ([0, 0], ValueError, r"at least one count > 0, got \[0, 0\]"),
    ([], ValueError, "non-empty 1-D"),
    ([[1, 2]], ValueError, "non-empty 1-D"),
    ([1.5, 2], TypeError, "must hold integers"),
    ("12", TypeError, "per-class sample counts"),
    (None, TypeError, "per-class sample counts"),
])
def test_bad_class_counts_are_refused_by_name(counts, error, message):
    with pytest.raises(error, match=message):
        check_class_counts(counts)
    for cls in (hm.LogitAdjustedLoss, hm.ClassWeightedLoss):
        with pytest.raises(error, match=message):
            cls(counts)


def test_counts_of_any_integer_kind_are_taken():
    for counts in ([3, 1], np.array([3, 1], dtype=np.int32), torch.tensor([3, 1]), np.array([3.0, 1.0])):
        assert check_class_counts(counts).tolist() == [3, 1]


@pytest.mark.parametrize("tau", [-1, -0.5, float("nan"), float("inf")])
def test_a_bad_tau_is_refused_naming_tau_and_the_value(tau):
    with pytest.raises(ValueError, match=f"tau must be a finite number >= 0, got {tau!r}"):
        hm.LogitAdjustedLoss(COUNTS, tau=tau)


def test_the_losses_follow_the_module_to_a_device_dtype():
    loss = hm.LogitAdjustedLoss(COUNTS).double()
    assert loss.adjustment.dtype == torch.float64  # a buffer: moves with .to() / .double()
    assert torch.isfinite(loss(torch.randn(4, 4, dtype=torch.float64), torch.arange(4)))
