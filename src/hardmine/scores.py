"""Difficulty signals from a classifier's outputs: pure functions, no gradient, higher = harder.

Loss is only one proxy for difficulty (and mislabeled samples have the highest loss of all), so several are here.
Every scorer takes `logits` [B, C] (float) and integer `targets` [B] in [0, C) and returns a float tensor [B].
p = softmax(logits), y the target, e_y its one-hot vector.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from hardmine._deprecated import renamed
from hardmine.inbatch.losses import per_sample_cross_entropy


def _check(logits: torch.Tensor, targets: torch.Tensor | None) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point torch.Tensor, got {getattr(logits, 'dtype', type(logits))}")
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise ValueError(f"logits must have shape [B, C] with B >= 1 and C >= 2, got {tuple(logits.shape)}")
    if not torch.isfinite(logits).all():
        raise ValueError("logits hold NaN or inf values")
    if targets is None:
        return
    integer = (torch.int64, torch.int32, torch.int16, torch.uint8)
    if not isinstance(targets, torch.Tensor) or targets.dtype not in integer:
        raise TypeError(f"targets must be an integer torch.Tensor, got {getattr(targets, 'dtype', type(targets))}")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must have shape [{logits.shape[0]}], got {tuple(targets.shape)}")
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(f"targets must be class ids in [0, {logits.shape[1]}), got values in "
                         f"[{int(targets.min())}, {int(targets.max())}]")


@torch.no_grad()
def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p_y: the loss itself."""
    _check(logits, targets)
    return per_sample_cross_entropy(logits.float(), targets)


@torch.no_grad()
def margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """max_{j != y} z_j - z_y: minus the margin of the logits z, so a misclassified sample scores above 0."""
    _check(logits, targets)
    return -_raw_margin(logits.float(), targets.long())


def _raw_margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    true = logits.gather(1, targets[:, None]).squeeze(1)
    others = logits.scatter(1, targets[:, None], float("-inf"))
    return true - others.max(dim=1).values


@torch.no_grad()
def one_minus_confidence(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 - p_y, in [0, 1]."""
    _check(logits, targets)
    return 1.0 - logits.float().softmax(1).gather(1, targets.long()[:, None]).squeeze(1)


@torch.no_grad()
def entropy(logits: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """-sum_j p_j log p_j (nats): the model's own uncertainty; the targets are not used."""
    _check(logits, targets)
    log_p = logits.float().log_softmax(1)
    return -(log_p.exp() * log_p).sum(1)


@torch.no_grad()
def el2n(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """||p - e_y||_2, the error L2 norm of Paul et al. 2021, in [0, sqrt(2)]."""
    _check(logits, targets)
    p = logits.float().softmax(1)
    return (p - F.one_hot(targets.long(), p.shape[1]).to(p.dtype)).norm(dim=1)


@torch.no_grad()
def grad_norm_bound(logits: torch.Tensor, targets: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    """Upper bound on the per-sample gradient norm of softmax cross-entropy (Katharopoulos & Fleuret 2018).

    The gradient with respect to the logits is p - e_y; with respect to the last layer's weights it is
    (p - e_y) h^T, whose norm is ||p - e_y|| * ||h|| for the penultimate activations `features` h [B, D].
    Without features, the bound up to the constant ||h|| (equal to EL2N).
    """
    bound = el2n(logits, targets)
    if features is None:
        return bound
    if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[0] != logits.shape[0]:
        shape = tuple(getattr(features, "shape", ()))
        raise ValueError(f"features must have shape [{logits.shape[0]}, D], got {shape}")
    return bound * features.detach().float().norm(dim=1)


SIGNALS = ("true_prob", "correct", "margin")
"""The per-sample signals `signals()` computes for `update(index, scores, **signals)` (ScoreMemory tracks them)."""


@torch.no_grad()
def signals(logits: torch.Tensor, targets: torch.Tensor,
            names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """What ScoreMemory tracks over time, from one batch's outputs: pass as `update(index, scores, **signals)`.

    true_prob: p_y [B] (Dataset Cartography's confidence and variability); correct: argmax == y [B] (bool,
    forgetting events); margin: z_y - max_{j != y} z_j [B] (area under the margin).
    names: which of them to compute (default: all); `sampler.statistics_needed` names those its policy and
    guards read. An empty `names` returns {} at once: asking for none costs nothing.
    """
    wanted = SIGNALS if names is None else tuple(names)
    if not wanted:
        return {}
    unknown = sorted(set(wanted) - set(SIGNALS))
    if unknown:
        raise ValueError(f"names must be among {SIGNALS}, got {unknown}")
    _check(logits, targets)
    logits, targets = logits.float(), targets.long()
    out = {}
    if "true_prob" in wanted:
        out["true_prob"] = logits.softmax(1).gather(1, targets[:, None]).squeeze(1)
    if "correct" in wanted:
        out["correct"] = logits.argmax(1) == targets
    if "margin" in wanted:
        out["margin"] = _raw_margin(logits, targets)
    return out


__getattr__ = renamed(__name__, {  # "statistics" now means nothing else in hardmine
    "statistics": ("hardmine.scores.signals", lambda: signals),
    "STATISTICS": ("hardmine.scores.SIGNALS", lambda: SIGNALS)})
