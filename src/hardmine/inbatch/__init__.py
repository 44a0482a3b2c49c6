"""Inside one batch, no memory needed: per-sample losses, a selector, and the reduction to one loss.

select.py (TopK, Threshold, Stochastic), reduction.py (reduce), losses.py (the InBatchLoss base, which declares
whether a loss selects samples; OHEM, focal, misclassified; the LOSSES registry), class_weighted.py and
logit_adjusted.py (the practitioner's answers to class imbalance, built from the training class counts),
detection.py (SSD negatives, RoI OHEM), roi_selection.py (OHEM and PISA weights on per-image RoI lists).
Every module here is imported with the package, so an in-batch loss in a new file registers itself.
"""

import importlib
import pkgutil

from hardmine.inbatch.class_weighted import ClassWeightedLoss
from hardmine.inbatch.logit_adjusted import LogitAdjustedLoss
from hardmine.inbatch.losses import LOSSES, InBatchLoss, per_sample_cross_entropy

__all__ = ["LOSSES", "ClassWeightedLoss", "InBatchLoss", "LogitAdjustedLoss", "per_sample_cross_entropy"]


def _import_every_module() -> None:
    """Import every module of this package, so that a component in a new file registers without an edit here."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_every_module()
