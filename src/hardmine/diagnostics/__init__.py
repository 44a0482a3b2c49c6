"""Diagnostics: evaluation beyond accuracy (per-class recall, macro-F1, difficulty slices) and cartography maps."""

from hardmine.diagnostics.evaluation import (
    SLICE_NAMES,
    difficulty_slices,
    macro_f1,
    per_class_recall,
    per_sample_loss,
    predict,
    slice_accuracy,
)

__all__ = ["SLICE_NAMES", "difficulty_slices", "macro_f1", "per_class_recall", "per_sample_loss", "predict",
           "slice_accuracy"]
