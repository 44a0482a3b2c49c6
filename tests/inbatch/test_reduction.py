import math

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine.inbatch.select import Selection, TopK


def test_weights_tensor_still_works():
    loss = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w = torch.tensor([1.0, 0.0, 2.0, 1.0])
    assert hm.reduce(loss, w).item() == pytest.approx(11 / 4)
    assert hm.reduce(loss, w, normalize="weighted").item() == pytest.approx(11 / 4)
    assert hm.reduce(loss, w, normalize="sum").item() == pytest.approx(11)
    assert hm.reduce(loss, np.array([2.0, 2.0, 2.0, 2.0]), w).item() == pytest.approx(22 / 4)
    assert hm.reduce(loss).item() == pytest.approx(2.5)


def test_boolean_mask_is_a_zero_one_weight():
    loss = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[True, False], [False, True]])
    assert hm.reduce(loss, mask, normalize="weighted").item() == pytest.approx(2.5)


def test_selection_reduces_over_kept_elements():
    loss = torch.tensor([[1.0, 5.0, 2.0], [4.0, 0.5, 3.0]], requires_grad=True)
    sel = TopK(3)(loss.detach())
    assert hm.reduce(loss, sel, normalize="weighted").item() == pytest.approx(4.0)
    assert hm.reduce(loss, sel, normalize="sum").item() == pytest.approx(12.0)
    assert hm.reduce(loss, sel).item() == pytest.approx(2.0)
    class_w = torch.tensor([1.0, 2.0, 0.5])
    # kept: 5 (w 2), 4 (w 1), 3 (w 0.5)
    assert hm.reduce(loss, sel, class_w, normalize="weighted").item() == pytest.approx(15.5 / 3.5)
    hm.reduce(loss, sel, normalize="sum").backward()
    assert loss.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


def test_selection_keeps_nan_of_unselected_elements_out():
    loss = torch.tensor([1.0, math.nan, 3.0])
    sel = Selection(torch.tensor([0, 2]), torch.ones(2), loss.shape)
    assert hm.reduce(loss, sel, normalize="weighted").item() == pytest.approx(2.0)


def test_empty_selection_gives_zero_with_weighted():
    loss = torch.tensor([1.0, 2.0], requires_grad=True)
    sel = Selection(torch.zeros(0, dtype=torch.long), torch.zeros(0), loss.shape)
    out = hm.reduce(loss, sel, normalize="weighted")
    out.backward()
    assert out.item() == 0.0 and loss.grad.tolist() == [0.0, 0.0]


def test_inputs_are_not_changed():
    loss = torch.tensor([1.0, 2.0, 3.0])
    w = torch.tensor([1.0, 2.0, 3.0])
    sel = TopK(2)(loss)
    hm.reduce(loss, sel, w, normalize="weighted")
    assert loss.tolist() == [1.0, 2.0, 3.0] and w.tolist() == [1.0, 2.0, 3.0]
    assert sel.weight.tolist() == [1.0, 1.0]


def test_bad_input():
    loss = torch.ones(4)
    with pytest.raises(ValueError, match=r"made for shape \(3,\)"):
        hm.reduce(loss, TopK(1)(torch.ones(3)))
    with pytest.raises(ValueError, match="2 Selections"):
        hm.reduce(loss, TopK(1)(loss), TopK(2)(loss))
    with pytest.raises(ValueError, match="shapes must match"):
        hm.reduce(loss, torch.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        hm.reduce(loss, -torch.ones(4))
    with pytest.raises(ValueError, match="empty"):
        hm.reduce(torch.ones(0))
    with pytest.raises(ValueError, match="normalize"):
        hm.reduce(loss, normalize="median")
    with pytest.raises(TypeError, match="floating point"):
        hm.reduce(torch.ones(4, dtype=torch.long))


def test_a_weight_tensor_of_the_loss_shape_takes_the_plain_weighted_mean():
    loss = torch.rand(7, requires_grad=True)
    w = torch.rand(7)
    fast = hm.reduce(loss, w)
    fast.backward()
    torch.testing.assert_close(fast, (loss.detach() * w).sum() / 7)
    torch.testing.assert_close(loss.grad, w / 7)
    with pytest.raises(ValueError, match="finite and non-negative"):
        hm.reduce(loss, -w)  # a tensor not made by a sampler is still checked
    sampler = hm.HardExampleSampler(hm.ScoreMemory(20), batch_size=5, policy="importance", seed=0)
    batch = next(iter(sampler))
    torch.testing.assert_close(hm.reduce(loss[:5], sampler.weights(batch)),
                               hm.reduce(loss[:5], sampler.weights(batch).clone(), normalize="mean"))


def test_the_sampler_s_weights_give_the_weighted_mean_in_one_dot_product_also_for_a_short_last_batch():
    sampler = hm.HardExampleSampler(hm.ScoreMemory(23), batch_size=5, policy="importance", seed=0)
    for batch in sampler:  # the last batch holds 3 samples
        sampler.update(batch, np.arange(1.0, batch.size + 1))
    assert batch.size == 3
    w = sampler.weights(batch)
    loss = torch.rand(3, requires_grad=True)
    reduced = hm.reduce(loss, w)
    reduced.backward()
    torch.testing.assert_close(reduced, (loss.detach() * w).sum() / 3)
    torch.testing.assert_close(loss.grad, w / 3)


def test_a_batch_policy_s_own_weights_are_checked_by_reduce_unless_the_policy_vouches_for_them():
    from hardmine import BatchPolicy

    class Negative(BatchPolicy):  # no name: not registered; select says nothing about its weights
        def select(self, losses, indices):
            return -np.ones_like(losses)

    for policy, fails in ((Negative(), True), (hm.SelectiveBackpropPolicy(), False)):
        sampler = hm.HardExampleSampler(hm.ScoreMemory(20), batch_size=5, policy=policy, seed=0)
        batch = next(iter(sampler))
        sampler.update(batch, np.arange(1.0, 6.0))
        loss = torch.rand(5, requires_grad=True)
        if fails:
            with pytest.raises(ValueError, match="finite and non-negative"):
                hm.reduce(loss, sampler.weights(batch))
        else:
            w = sampler.weights(batch)
            torch.testing.assert_close(hm.reduce(loss, w), (loss * w).sum() / 5)
