"""Deprecated: the reference-model helpers moved to `hardmine.sampling.reference` (import them from there, or as
`hardmine.train_reference`, `hardmine.reference_losses`, `hardmine.cross_fit_losses`)."""

from __future__ import annotations

import warnings

from hardmine.sampling.reference import cross_fit_losses, reference_losses, train_reference

warnings.warn("hardmine.reference moved to hardmine.sampling.reference; import train_reference, reference_losses "
              "and cross_fit_losses from there (or from hardmine)", DeprecationWarning, stacklevel=2)

__all__ = ["cross_fit_losses", "reference_losses", "train_reference"]
