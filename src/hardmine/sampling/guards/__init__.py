"""Guards against the risks of hard example mining, each turned on by passing it to a policy's `guards=`.

- NoiseGuard ("amplify label noise", "overfit to outliers"): samples that look mislabeled rather than hard are
  not up-weighted; they are listed by `suspects()` for relabeling, never silently dropped.
- ClassBalance ("ignoring class imbalance"): per-class quotas of the sampling mass.
- CoverageGuard ("reduce coverage of easy but important cases"): a uniform floor, and every sample drawn at
  least once every K epochs.
- WeightCap ("destabilize optimization"): importance weights clipped at a maximum.
A new guard is one file: subclass `Guard`, set `name`, override the hooks (see `base.HOOKS`).
"""

import importlib
import pkgutil

from hardmine.sampling.guards.base import GUARDS, HOOKS, Guard
from hardmine.sampling.guards.class_balance import ClassBalance
from hardmine.sampling.guards.coverage import CoverageGuard
from hardmine.sampling.guards.noise import NoiseGuard
from hardmine.sampling.guards.weight_cap import WeightCap

__all__ = ["GUARDS", "HOOKS", "ClassBalance", "CoverageGuard", "Guard", "NoiseGuard", "WeightCap"]


def _import_every_module() -> None:
    """Import every module of this package, so that a component in a new file registers without an edit here."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_every_module()
