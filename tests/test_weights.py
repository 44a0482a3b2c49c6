"""BatchWeights: the sampler's weights as a value `reduce` reads, never attributes on a tensor, never shared."""

import numpy as np
import torch

import hardmine as hm
from hardmine.weights import BatchWeights


def _sampler():
    memory = hm.ScoreMemory(40)
    sampler = hm.HardExampleSampler(memory, batch_size=8, policy="importance", seed=0)
    batch = next(iter(sampler))
    sampler.update(batch, np.linspace(0.5, 2.0, 8))
    return sampler, batch


def test_each_call_returns_a_new_value_that_later_calls_do_not_share():
    sampler, batch = _sampler()
    first = sampler.weights(batch)
    assert isinstance(first, BatchWeights) and first.valid and first.over_size is not None
    expected = first.clone()
    first.mul_(100)  # the caller's copy only
    second = sampler.weights(batch)
    assert torch.equal(second, expected) and second.data_ptr() != first.data_ptr()
    assert not vars(torch.ones(1))  # nothing is set on plain tensors


def test_reduce_trusts_them_until_they_change_in_place():
    sampler, batch = _sampler()
    loss = torch.linspace(0.1, 1.0, 8)
    w = sampler.weights(batch)
    torch.testing.assert_close(hm.reduce(loss, w), (loss * w.as_subclass(torch.Tensor)).mean())
    w[0] = -1.0  # an in-place change: the guarantee is gone, reduce checks them
    assert not w.valid and w.over_size is None
    try:
        hm.reduce(loss, w)
    except ValueError as error:
        assert "finite and non-negative" in str(error)
    else:
        raise AssertionError("reduce took negative weights")


def test_operations_give_plain_tensors_and_reduce_takes_plain_tensors():
    sampler, batch = _sampler()
    w = sampler.weights(batch)
    assert type(w * 2) is torch.Tensor and type(w[w > 0]) is torch.Tensor and type(w.cpu()) in (torch.Tensor,
                                                                                                  BatchWeights)
    loss = torch.ones(8)
    torch.testing.assert_close(hm.reduce(loss, torch.full((8,), 2.0)), torch.tensor(2.0))
    torch.testing.assert_close(hm.reduce(loss, w * 0), torch.tensor(0.0))
