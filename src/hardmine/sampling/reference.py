"""Reference models for RHO-LOSS: train one on a holdout or a clean set, or cross-fit, and score every sample.

A reference ("irreducible loss") model estimates how much of a sample's loss no model can remove: the loss of a
model trained on other data. Three ways to get one, as the RHO-LOSS paper discusses:
- a holdout taken from the training data: `train_reference(make_model, holdout)`, then
  `reference_losses(model, train)`;
- a clean set the user supplies: the same calls with the clean set as the holdout;
- cross-fitting, so that no data is set aside: `cross_fit_losses(make_model, train)` trains one model per fold
  and scores each fold with the model that did not see it.
The reference may be smaller than the trained model. Items of a data set are `(x, y)` (map-style).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from hardmine._checks import check_int, to_numpy
from hardmine.inbatch.losses import per_sample_cross_entropy

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(outputs [B, ...], targets [B]) -> per-sample loss [B]."""


def _progress(iterable: Any, total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the bar is optional
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False)


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _check_dataset(name: str, dataset: Any) -> int:
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(f"{name} must be a map-style data set of (x, y) items, got {type(dataset).__name__}")
    size = len(dataset)
    if size == 0:
        raise ValueError(f"{name} is empty")
    return size


def _batch_losses(model: nn.Module, x: Any, y: Any, loss_fn: LossFn, what: str) -> torch.Tensor:
    """loss_fn(model(x), y) [B], with an error naming the model and the input's shape when the model fails."""
    try:
        losses = loss_fn(model(x), y)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"model failed on a batch of {what} with inputs of shape {shape}: {error}") from error
    if not isinstance(losses, torch.Tensor) or losses.shape != (len(y),):
        raise ValueError(f"loss_fn must return a per-sample loss of shape ({len(y)},), got "
                         f"{tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__}")
    return losses


def reference_losses(model: nn.Module, dataset: Any, *, loss_fn: LossFn | None = None, batch_size: int = 512,
                     progress: bool = True) -> np.ndarray:
    """Per-sample losses [N] (float32) of a trained `model` on every item of `dataset`, in order.

    Batched, without gradient, in eval mode (the model's mode is restored). loss_fn: per-sample loss (default
    cross-entropy). Raises ValueError naming the input's shape when the model fails on the data, or when a loss
    is NaN, infinite or negative (an irreducible loss must be a finite, non-negative loss).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    size = _check_dataset("dataset", dataset)
    batch_size = check_int("batch_size", batch_size)
    loss_fn = loss_fn or per_sample_cross_entropy
    device, was_training = _device(model), model.training
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    out = np.empty(size, dtype=np.float32)
    start = 0
    model.eval()
    try:
        with torch.no_grad():
            for x, y in _progress(loader, len(loader), "reference losses", progress):
                losses = _batch_losses(model, x.to(device), y.to(device), loss_fn, "dataset")
                out[start: start + len(y)] = losses.float().cpu().numpy()
                start += len(y)
    finally:
        model.train(was_training)
    bad = ~(np.isfinite(out) & (out >= 0))
    if bad.any():
        raise ValueError(f"the reference losses of {int(bad.sum())} samples are NaN, infinite or negative (e.g. "
                         f"index {int(np.flatnonzero(bad)[0])}: {out[bad][0]}); check the model and loss_fn")
    return out


def train_reference(make_model: Callable[[], nn.Module], holdout: Any, *, loss_fn: LossFn | None = None,
                    optimizer: Callable[[Any], torch.optim.Optimizer] | None = None, epochs: int = 5,
                    batch_size: int = 128, seed: int = 0, progress: bool = True) -> nn.Module:
    """A reference model: `make_model()` trained on `holdout` (a held-out part of the training data, or a clean
    set) for `epochs` shuffled passes of the mean per-sample `loss_fn` (default cross-entropy).

    optimizer(params) -> Optimizer (default AdamW, lr 1e-3). seed: the model's initialisation (drawn under a
    forked torch generator, so the global one is left as it was) and the shuffling. Returns the model in eval mode.
    Cost: epochs x len(holdout) samples forwarded and back-propagated.
    """
    if not callable(make_model):
        raise TypeError(f"make_model must be a callable returning an nn.Module, got {type(make_model).__name__}")
    _check_dataset("holdout", holdout)
    epochs = check_int("epochs", epochs)
    batch_size = check_int("batch_size", batch_size)
    seed = check_int("seed", seed, minimum=0)
    loss_fn = loss_fn or per_sample_cross_entropy
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make_model()
    if not isinstance(model, nn.Module):
        raise TypeError(f"make_model must return a torch.nn.Module, got {type(model).__name__}")
    opt = (optimizer or (lambda params: torch.optim.AdamW(params, lr=1e-3)))(model.parameters())
    device = _device(model)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(holdout, batch_size=batch_size, shuffle=True, generator=generator)
    model.train()
    for epoch in range(epochs):
        for x, y in _progress(loader, len(loader), f"reference epoch {epoch + 1}/{epochs}", progress):
            loss = _batch_losses(model, x.to(device), y.to(device), loss_fn, "holdout").mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def cross_fit_losses(make_model: Callable[[], nn.Module], dataset: Any, *, folds: int | Any = 2, seed: int = 0,
                     batch_size: int = 512, progress: bool = True, **train: Any) -> np.ndarray:
    """Irreducible losses [N] (float32) without a holdout: each fold is scored by a reference trained on the others.

    folds: the number of folds (a seeded random split into near-equal parts), or the fold id [N] (ints) of each
        sample. train: keyword arguments of `train_reference` (loss_fn, optimizer, epochs, batch_size is the
        scoring batch). Cost: a reference trained on (folds - 1) / folds of the data per fold, and one forward of
        every sample.
    """
    size = _check_dataset("dataset", dataset)
    seed = check_int("seed", seed, minimum=0)
    if isinstance(folds, (int, np.integer)) and not isinstance(folds, bool):
        count = check_int("folds", folds, minimum=2)
        if count > size:
            raise ValueError(f"folds is {count} but the data set has only {size} samples")
        assignment = np.random.default_rng(seed).permutation(size) % count
    else:
        assignment = to_numpy(folds)
        if assignment.shape != (size,) or assignment.dtype.kind not in "iu":
            raise ValueError(f"folds must be an int or integer fold ids of shape ({size},), got "
                             f"{assignment.dtype} of shape {tuple(assignment.shape)}")
        if np.unique(assignment).size < 2:
            raise ValueError("folds must hold at least two distinct fold ids")
    out = np.empty(size, dtype=np.float32)
    loss_fn = train.get("loss_fn")
    for k, fold in enumerate(np.unique(assignment)):
        inside = np.flatnonzero(assignment == fold)
        outside = np.flatnonzero(assignment != fold)
        model = train_reference(make_model, Subset(dataset, outside.tolist()), seed=seed + k, progress=progress,
                                **train)
        out[inside] = reference_losses(model, Subset(dataset, inside.tolist()), loss_fn=loss_fn,
                                       batch_size=batch_size, progress=progress)
    return out
