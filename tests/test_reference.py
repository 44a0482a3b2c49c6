"""Reference models: per-sample losses in order without gradient, training on a holdout, cross-fitting."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import hardmine as hm


def blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 4, generator=g) * 0.5 + F.one_hot(y, 4).float() * 2.0
    return TensorDataset(x, y)


def test_reference_losses_are_the_per_sample_losses_in_order_and_restore_the_mode():
    data = blobs(50)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3))
    model.train()
    losses = hm.reference_losses(model, data, batch_size=7, progress=False)
    assert losses.dtype == np.float32 and losses.shape == (50,)
    model.eval()
    expected = F.cross_entropy(model(data.tensors[0]), data.tensors[1], reduction="none").detach().numpy()
    np.testing.assert_allclose(losses, expected, rtol=1e-5)  # eval mode (no dropout) while scoring
    model.train()
    hm.reference_losses(model, data, progress=False)
    assert model.training


def test_a_model_that_fails_on_the_data_shape_is_named_with_the_shape():
    with pytest.raises(ValueError, match=r"model failed on a batch of dataset with inputs of shape \(50, 4\)"):
        hm.reference_losses(nn.Linear(5, 3), blobs(50), progress=False)
    with pytest.raises(ValueError, match=r"loss_fn must return a per-sample loss of shape \(50,\)"):
        hm.reference_losses(nn.Linear(4, 3), blobs(50), loss_fn=F.cross_entropy, progress=False)
    with pytest.raises(ValueError, match="model failed on a batch of holdout"):
        hm.train_reference(lambda: nn.Linear(2, 3), blobs(20), epochs=1, progress=False)


def test_train_reference_learns_the_holdout_is_seeded_and_leaves_the_global_generator_alone():
    holdout, train = blobs(300, seed=1), blobs(150, seed=2)
    state = torch.get_rng_state()
    def opt(params):
        return torch.optim.SGD(params, lr=0.3)
    model = hm.train_reference(lambda: nn.Linear(4, 3), holdout, epochs=20, optimizer=opt, seed=4, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    untrained = hm.reference_losses(nn.Linear(4, 3), train, progress=False)
    trained = hm.reference_losses(model, train, progress=False)
    assert trained.mean() < 0.5 * untrained.mean()
    again = hm.train_reference(lambda: nn.Linear(4, 3), holdout, epochs=20, optimizer=opt, seed=4, progress=False)
    np.testing.assert_array_equal(hm.reference_losses(again, train, progress=False), trained)


def test_cross_fitting_scores_each_fold_with_the_model_trained_on_the_other():
    # x carries no information, so a model can only learn its training fold's label: fold k holds only label k.
    # Scored by the other fold's model, every sample gets a loss above ln 2; by its own, it would get one below.
    n = 40
    y = (torch.arange(n) >= n // 2).long()
    data = TensorDataset(torch.zeros(n, 1), y)
    def opt(params):
        return torch.optim.SGD(params, lr=0.5)
    losses = hm.cross_fit_losses(lambda: nn.Linear(1, 2), data, folds=y.numpy(), epochs=10, optimizer=opt,
                                 progress=False)
    assert losses.shape == (n,) and (losses > math.log(2) + 1.0).all()
    own = hm.reference_losses(hm.train_reference(lambda: nn.Linear(1, 2), torch.utils.data.Subset(data, range(20)),
                                                 epochs=10, optimizer=opt, progress=False),
                              torch.utils.data.Subset(data, range(20)), progress=False)
    assert (own < math.log(2)).all()


def test_cross_fitting_with_a_number_of_folds_scores_every_sample_once():
    losses = hm.cross_fit_losses(lambda: nn.Linear(4, 3), blobs(90), folds=3, epochs=3, progress=False)
    assert losses.shape == (90,) and np.isfinite(losses).all() and (losses >= 0).all()
    with pytest.raises(ValueError, match="folds must be >= 2"):
        hm.cross_fit_losses(lambda: nn.Linear(4, 3), blobs(10), folds=1, progress=False)
    with pytest.raises(ValueError, match="at least two distinct fold ids"):
        hm.cross_fit_losses(lambda: nn.Linear(4, 3), blobs(10), folds=np.zeros(10, dtype=np.int64), progress=False)
    with pytest.raises(ValueError, match=r"folds must be an int or integer fold ids of shape \(10,\)"):
        hm.cross_fit_losses(lambda: nn.Linear(4, 3), blobs(10), folds=np.zeros(9, dtype=np.int64), progress=False)


def test_reference_losses_feed_rho_loss():
    data = blobs(60)
    model = hm.train_reference(lambda: nn.Linear(4, 3), blobs(120, seed=3), epochs=5, progress=False)
    il = hm.reference_losses(model, data, progress=False)
    memory = hm.ScoreMemory(60)
    sampler = hm.HardExampleSampler(memory, 6, policy=hm.build_policy("rho_loss", irreducible_loss=il), seed=0)
    batch = next(iter(sampler))
    assert batch.size == 30
    np.testing.assert_array_equal(memory.get("irreducible_loss"), il)
