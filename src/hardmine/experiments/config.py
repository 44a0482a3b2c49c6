"""The training set-up shared by every run of a comparison: optimiser, learning-rate schedule, augmentation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from hardmine._checks import check_choice

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "cosine", "step")
STEP_MILESTONES = (0.5, 0.75)  # the step schedule multiplies the learning rate by 0.1 at these fractions of the run


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, schedule and measurement resolution of every run.

    model: a built-in model name ("logreg", "mlp", "cnn") or the "package.module:factory" of a user's factory
    (a label only: the factory itself is given to `hardmine.compare`). hidden: hidden units of the built-in MLP.
    optimizer: "sgd" (with `momentum`) or "adamw". lr: the peak learning rate. schedule: "constant", "cosine" (to 0
    at the end of the run) or "step" (x0.1 at 50% and 75% of the run), after `warmup_steps` steps of linear warm-up;
    the schedule follows the fraction of the run done (epochs plus the done fraction of the current epoch), so a
    strategy whose epochs shrink still ends its schedule at its last step. augment: random 2-pixel-shift crops and
    horizontal flips of image batches (tensor ops, seeded per run). evals_per_epoch: validation (and, with
    `test_curve`, test) evaluations per epoch, the curves' resolution; without `test_curve` the test set is evaluated
    once, at the end (cheaper for a large test set). threads: torch intra-op threads per run.
    """

    model: str = "mlp"
    hidden: int = 256
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0
    augment: bool = False
    evals_per_epoch: int = 4
    test_curve: bool = True
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden", "epochs", "batch_size", "evals_per_epoch", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be an integer >= 0, got {self.warmup_steps!r}")
        check_choice("--optimizer", self.optimizer, OPTIMIZERS)
        check_choice("--schedule", self.schedule, SCHEDULES)
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a finite number > 0, got {self.lr}")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"--weight-decay must be a finite number >= 0, got {self.weight_decay}")

    def lr_factor(self, position: float, step: int) -> float:
        """The learning rate over its peak at `position` (epochs done, a float in [0, epochs]) and global `step`."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        done = min(max(position / self.epochs, 0.0), 1.0)
        if self.schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * done))
        if self.schedule == "step":
            return warm * 0.1 ** sum(done >= m for m in STEP_MILESTONES)
        return warm

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for results.json)."""
        return asdict(self)
