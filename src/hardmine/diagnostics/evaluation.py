"""Evaluation of a classifier beyond accuracy: per-class recall, macro-F1, and accuracy on difficulty slices.

Difficulty slices put each test sample in a quantile of a reference model's per-sample loss (by default a
uniformly trained model's), from "easy" (lowest loss) to "hard", so that a strategy's gains and losses on hard
and on easy cases are seen separately ("generalization must be evaluated independently").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hardmine.inbatch.losses import per_sample_cross_entropy

SLICE_NAMES = ("easy", "easier", "middle", "harder", "hard")


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray | torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Logits [M, C] of `model` on inputs `x` [M, *shape], in eval mode, without gradient, in chunks."""
    was_training = model.training
    model.eval()
    x = torch.as_tensor(x)
    try:
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    finally:
        model.train(was_training)


@torch.no_grad()
def per_sample_loss(logits: torch.Tensor, targets: np.ndarray | torch.Tensor) -> np.ndarray:
    """Cross-entropy [M] (float64) of logits [M, C] against int targets [M]."""
    return per_sample_cross_entropy(logits.float(), torch.as_tensor(targets)).double().numpy()


def per_class_recall(pred: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Recall [C] of each class: the fraction of its test samples predicted as it; NaN for an absent class."""
    support = np.bincount(y, minlength=num_classes).astype(np.float64)
    hits = np.bincount(y[pred == y], minlength=num_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / support, np.nan)


def macro_f1(pred: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    """Mean over the classes present in `y` [M] of F1 = 2 TP / (2 TP + FP + FN) for predictions `pred` [M]."""
    tp = np.bincount(y[pred == y], minlength=num_classes).astype(np.float64)
    predicted = np.bincount(pred, minlength=num_classes).astype(np.float64)
    support = np.bincount(y, minlength=num_classes).astype(np.float64)
    present = support > 0
    f1 = 2 * tp[present] / (predicted[present] + support[present])
    return float(f1.mean())


def difficulty_slices(reference_loss: np.ndarray, num_slices: int = 5) -> np.ndarray:
    """Slice id [M] (int64, 0 = easiest) of each sample: its quantile of `reference_loss` [M], by rank, so the
    slices have equal sizes (within one) whatever the ties; ties are broken by index."""
    if num_slices < 1:
        raise ValueError(f"num_slices must be >= 1, got {num_slices}")
    order = np.argsort(reference_loss, kind="stable")
    slices = np.empty(reference_loss.size, dtype=np.int64)
    slices[order] = np.arange(reference_loss.size) * num_slices // max(reference_loss.size, 1)
    return slices


def slice_accuracy(pred: np.ndarray, y: np.ndarray, slices: np.ndarray, num_slices: int = 5) -> np.ndarray:
    """Accuracy [num_slices] within each slice id of `slices` [M]; NaN for an empty slice."""
    total = np.bincount(slices, minlength=num_slices).astype(np.float64)
    hits = np.bincount(slices[pred == y], minlength=num_slices).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / total, np.nan)
