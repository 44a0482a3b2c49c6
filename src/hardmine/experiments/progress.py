"""A rich progress bar per run: strategy, seed, epoch and the test accuracy after the last epoch."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from hardmine.experiments.train import EpochCallback


class RunProgress:
    """Use as a context manager; `start(label, seed)` adds a bar and returns the per-epoch callback."""

    def __init__(self, epochs: int, console: Console | None = None, enabled: bool = True) -> None:
        self.epochs = epochs
        self.progress = Progress(TextColumn("{task.description:<40}"), TextColumn("seed {task.fields[seed]}"),
                                 TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                                 TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(),
                                 console=console, disable=not enabled)

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, label: str, seed: int | None) -> EpochCallback:
        """A new bar for run (label, seed); the returned callback advances it after each epoch."""
        task = self.progress.add_task(label[:40], total=self.epochs, seed=seed, acc="-")

        def on_epoch(epoch: int, accuracy: float) -> None:
            self.progress.update(task, completed=epoch + 1, acc=f"{accuracy:.4f}")

        return on_epoch
