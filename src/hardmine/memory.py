"""Deprecated: ScoreMemory and Column moved to `hardmine.sampling.memory` (import them from there, or as
`hardmine.ScoreMemory` / `hardmine.Column`)."""

from __future__ import annotations

import warnings

from hardmine.sampling.memory import BUILTIN_COLUMNS, Column, Rule, ScoreMemory, assign

warnings.warn("hardmine.memory moved to hardmine.sampling.memory; import ScoreMemory and Column from there (or "
              "as hardmine.ScoreMemory, hardmine.Column)", DeprecationWarning, stacklevel=2)

__all__ = ["BUILTIN_COLUMNS", "Column", "Rule", "ScoreMemory", "assign"]
