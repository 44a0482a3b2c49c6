"""The training set-up shared by every run of a comparison."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hardmine.experiments.models import MODELS


@dataclass(frozen=True)
class TrainConfig:
    """Model, optimiser and schedule of every run (SGD with momentum, constant learning rate).

    evals_per_epoch: test-set evaluations per epoch, the resolution of the accuracy-against-backprops curves.
    threads: torch intra-op threads (1 makes wall times comparable between runs on a shared machine).
    """

    model: str = "mlp"
    hidden: int = 256
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    evals_per_epoch: int = 4
    threads: int = 1

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"--model must be one of {list(MODELS)}, got {self.model!r}")
        for name in ("hidden", "epochs", "batch_size", "evals_per_epoch", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"--weight-decay must be >= 0, got {self.weight_decay}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for results.json)."""
        return asdict(self)
