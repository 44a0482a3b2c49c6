"""The training class counts that class-aware losses (class_weighted, logit_adjusted) take, checked once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

ClassCounts = Sequence[int] | np.ndarray | torch.Tensor
"""Samples per class [C] in the training data (e.g. `np.bincount(y_train, minlength=C)`)."""


def check_class_counts(class_counts: ClassCounts) -> np.ndarray:
    """`class_counts` as int64 [C]: a 1-D sequence of integers >= 0, at least one > 0; ValueError or TypeError
    naming `class_counts` and the value otherwise."""
    if isinstance(class_counts, (str, bytes)) or not isinstance(class_counts, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"class_counts must be a 1-D sequence of per-class sample counts, got {class_counts!r}")
    values = class_counts.detach().cpu().numpy() if isinstance(class_counts, torch.Tensor) else class_counts
    try:
        counts = np.asarray(values)
    except (TypeError, ValueError):
        raise TypeError(f"class_counts must be a 1-D sequence of integers, got {class_counts!r}") from None
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"class_counts must be a non-empty 1-D sequence, got shape {counts.shape}: {class_counts!r}")
    if counts.dtype.kind == "f" and np.all(np.isfinite(counts)) and np.all(counts == np.round(counts)):
        counts = counts.astype(np.int64)
    if counts.dtype.kind not in "iu":
        raise TypeError(f"class_counts must hold integers, got {class_counts!r} (dtype {counts.dtype})")
    counts = counts.astype(np.int64)
    if (counts < 0).any():
        c = int(np.flatnonzero(counts < 0)[0])
        raise ValueError(f"class_counts must be >= 0, got class_counts[{c}] = {int(counts[c])} in {counts.tolist()}")
    if not (counts > 0).any():
        raise ValueError(f"class_counts must have at least one count > 0, got {counts.tolist()}")
    return counts


def check_targets(target: torch.Tensor, counts: np.ndarray, owner: str) -> None:
    """Integer class targets within [0, C) of a class with samples; ValueError naming the label otherwise."""
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"{owner} needs integer class targets, got dtype {target.dtype}")
    if target.numel() == 0:
        return
    low, high = int(target.min()), int(target.max())
    if low < 0 or high >= counts.size:
        bad = low if low < 0 else high
        raise ValueError(f"target holds label {bad}, outside the {counts.size} classes of class_counts "
                         f"(labels must be in [0, {counts.size}))")
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        seen = torch.isin(target.detach().cpu(), torch.from_numpy(empty))
        if bool(seen.any()):
            label = int(target.detach().cpu()[seen].flatten()[0])
            raise ValueError(f"target holds label {label}, whose class_counts[{label}] is 0: the training data "
                             f"has no sample of it")
