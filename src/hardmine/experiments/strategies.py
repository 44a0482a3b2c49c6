"""Strategies built from specs: a sampler policy, or an in-batch loss over uniform batches, with guards.

A name in `hardmine.sampling.policies.POLICIES` decides which samples are drawn (and their importance weights);
a name in `hardmine.inbatch.losses.LOSSES` keeps uniform shuffling and mines inside each batch. Guards come from
`hardmine.sampling.guards.GUARDS` and are given to the policy (for an in-batch loss, to its uniform sampler). An
in-batch loss also leaves the noise guard's suspects out of the batch loss: OHEM would otherwise pick exactly them.
An in-batch loss with `+class_balance` (e.g. `ohem+class_balance`: OHEM inside class-balanced batches) is sampled
by the `class_balanced` policy at the guard's power instead of uniformly. A loss that takes `class_counts`
(class_weighted, logit_adjusted) gets the training class counts given to `build_strategy`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hardmine.experiments.reference import ReferenceSpec
from hardmine.experiments.spec import Part, StrategySpec, format_value
from hardmine.inbatch.losses import LOSSES, InBatchLoss, per_sample_cross_entropy
from hardmine.sampling.guards import GUARDS, ClassBalance
from hardmine.sampling.policies import IRREDUCIBLE_LOSS, POLICIES, Policy, build_policy

PerSampleLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits [B, C], targets [B]) -> loss [B]

_LOSS_DEFAULTS: dict[str, dict[str, Any]] = {"focal": {"alpha": None}}  # alpha=0.25 would scale every class by 1/4
_OHEM_DEFAULT_KEEP = 0.5
_NOT_FROM_TEXT = ("base_loss", "memory", "reduction", "guards", "class_counts")
_BALANCED_SAMPLER = "class_balanced"  # the sampler of an in-batch loss given +class_balance


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    """Keyword parameters of cls's constructor, following `**kwargs` up to the base classes."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                found.setdefault(p.name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return found


def _accepted(cls: type) -> list[str]:
    return list(_parameters(cls))


def _construct(kind: str, part: Part, cls: type, extra: dict[str, Any]) -> Any:
    """cls(**part.params, **extra), with errors that name the strategy or guard and the parameter."""
    accepted = _parameters(cls)
    params = {}
    for key, value in part.params.items():
        if key in _NOT_FROM_TEXT or key not in accepted:
            allowed = [p for p in accepted if p not in _NOT_FROM_TEXT]
            raise ValueError(f"unknown parameter {key!r} for {kind} {part.name!r}; it takes {allowed}")
        text_default = isinstance(accepted[key].default, str)
        params[key] = format_value(value) if text_default and not isinstance(value, str) else value
    try:
        return cls(**params, **extra)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{kind} {part.name!r}: {err}") from None


@dataclass
class Strategy:
    """What the training loop needs from a spec.

    policy: the sampler's policy. guards: the guard objects (also inside the policy).
    loss_mean / loss_none: the in-batch loss with reduction "mean" (back-propagated) and "none" (to find the
    samples it keeps), or None for a sampler strategy (the base loss weighted by the sampler's weights).
    reference: how the irreducible losses of a policy that reads them (rho_loss) are made, else None.
    """

    spec: StrategySpec
    policy: Policy
    guards: tuple[Any, ...]
    loss_mean: nn.Module | None = None
    loss_none: nn.Module | None = None
    reference: ReferenceSpec | None = None

    @property
    def label(self) -> str:
        """The spec's canonical text."""
        return self.spec.label

    def suspects(self) -> np.ndarray | None:
        """Indices (int64) the guards suspect of wrong labels, or None when no guard looks for them."""
        found = [s for s in (g.suspects() for g in self.guards if hasattr(g, "suspects")) if s is not None]
        if not found:
            return None
        return np.unique(np.concatenate(found)).astype(np.int64)

    @property
    def selects(self) -> bool:
        """True when the in-batch loss declares that it keeps only some samples of each batch (`selects`, e.g.
        OHEM or a user's trimmed loss): the training loop then back-propagates the kept ones alone (those whose
        "none" loss is not 0), through the same mechanism as a sampler's zero weights."""
        return self.loss_mean is not None and type(self.loss_mean).selects

    def selection_weights(self, logits: torch.Tensor, targets: torch.Tensor,
                          clean: torch.Tensor | None = None) -> torch.Tensor:
        """0/1 float weights [B] of the samples the in-batch selector keeps, chosen among the `clean` ones (bool
        [B]; all when None) from logits [B, C] and targets [B], without gradient. A kept sample whose loss is
        exactly 0 reads as dropped; its gradient is 0 either way."""
        if not self.selects:
            raise ValueError(f"strategy {self.label!r} does not select samples inside the batch")
        weights = torch.zeros(targets.shape[0], dtype=torch.float32)
        with torch.no_grad():
            rows = torch.arange(targets.shape[0]) if clean is None else torch.nonzero(clean).flatten()
            if rows.numel():
                kept = self.loss_none(logits.detach()[rows], targets[rows]) != 0
                weights[rows[kept]] = 1.0
        return weights


def _reference_part(part: Part, cls: type) -> tuple[Part, ReferenceSpec | None]:
    """For a policy that reads irreducible losses (rho_loss): the spec without `reference=holdout|crossfit` and
    `reference_epochs=` (default 5), and the ReferenceSpec they describe; other policies pass through unchanged."""
    if IRREDUCIBLE_LOSS not in getattr(cls, "columns", ()):
        return part, None
    params = dict(part.params)
    if "irreducible_loss" in params:
        raise ValueError(f"strategy {part.name!r}: irreducible_loss comes from reference=holdout|crossfit in compare")
    try:
        reference = ReferenceSpec(str(params.pop("reference", "holdout")), params.pop("reference_epochs", 5))
    except ValueError as err:
        raise ValueError(f"strategy {part.name!r}: {err}") from None
    return Part(part.name, params), reference


def known_strategies() -> dict[str, list[str]]:
    """The registered names, by kind: what `--strategies` accepts."""
    return {"policies": sorted(POLICIES), "in-batch losses": sorted(LOSSES), "guards": sorted(GUARDS)}


def build_strategy(spec: StrategySpec, base_loss: PerSampleLoss | None = None,
                   class_counts: Sequence[int] | np.ndarray | None = None) -> Strategy:
    """The policy, guards and in-batch loss of `spec`; ValueError naming the unknown name or bad parameter.

    base_loss: the per-sample loss `(logits, targets) -> [B]` an in-batch loss such as OHEM wraps (default:
    cross-entropy). class_counts: the training samples per class [C] (`np.bincount(y_train, minlength=C)`),
    required by a loss that takes them (class_weighted, logit_adjusted) and refused by no other."""
    name = spec.strategy.name
    guards = []
    for part in spec.guards:
        if part.name not in GUARDS:
            raise ValueError(f"unknown guard {part.name!r} in {spec.label!r}; guards: {sorted(GUARDS)}")
        guards.append(_construct("guard", part, GUARDS[part.name], {}))
    extra = {"guards": guards} if guards else {}
    if name in POLICIES:
        part, reference = _reference_part(spec.strategy, POLICIES[name])
        policy = _construct("strategy", part, POLICIES[name], extra)
        return Strategy(spec, build_policy(policy), tuple(guards), reference=reference)
    if name in LOSSES:
        cls = LOSSES[name]
        if not (isinstance(cls, type) and issubclass(cls, InBatchLoss)):
            raise ValueError(f"in-batch loss {name!r} ({getattr(cls, '__qualname__', cls)!r}) does not declare whether "
                             "it selects samples, so its compute cannot be counted: subclass "
                             "hardmine.inbatch.InBatchLoss and set selects = True or False")
        policy = _loss_sampler(spec, cls, guards)
        params = {**_LOSS_DEFAULTS.get(name, {}), **spec.strategy.params}
        if name == "ohem" and "keep" not in params and "threshold" not in params:
            params["keep"] = _OHEM_DEFAULT_KEEP
        part = Part(name, params)
        wrapped = base_loss if base_loss is not None else nn.CrossEntropyLoss(reduction="none")
        base = {"base_loss": wrapped} if "base_loss" in _accepted(cls) else {}
        if "class_counts" in _accepted(cls):
            if class_counts is None:
                raise ValueError(f"strategy {name!r} needs the training class counts: build_strategy(spec, "
                                 "class_counts=np.bincount(y_train, minlength=num_classes))")
            base["class_counts"] = class_counts
        loss_mean = _construct("strategy", part, cls, {**base, "reduction": "mean"})
        loss_none = _construct("strategy", part, cls, {**base, "reduction": "none"})
        return Strategy(spec, policy, tuple(policy.guards), loss_mean, loss_none)
    known = known_strategies()
    raise ValueError(f"unknown strategy {name!r}; policies: {known['policies']}, in-batch losses: "
                     f"{known['in-batch losses']}")


def _loss_sampler(spec: StrategySpec, cls: type, guards: list[Any]) -> Policy:
    """The sampler policy of an in-batch loss: uniform with the guards, or class_balanced at the power of a
    class_balance guard (with the other guards)."""
    balance = [g for g in guards if isinstance(g, ClassBalance)]
    if not balance:
        return build_policy("uniform", guards=guards)
    if "class_counts" in _accepted(cls):
        raise ValueError(f"strategy {spec.strategy.name!r} already balances the classes; with +class_balance each "
                         "class would be corrected twice: drop one of them")
    rest = [g for g in guards if not isinstance(g, ClassBalance)]
    return build_policy(_BALANCED_SAMPLER, power=balance[0].power, guards=rest)


cross_entropy = per_sample_cross_entropy
"""Per-sample cross-entropy [B] of logits [B, C] and int64 targets [B] (compare's default base loss)."""
