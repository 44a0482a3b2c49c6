"""Progress of a comparison on stderr: a rich bar per run on a terminal, else one whole line per finished run.

Rich's bars cut their lines to the console's width when stderr is not a terminal ("acc 0.9044 0:..."); a log or a
pipe gets plain lines instead: `[3] ohem lr=0.05 seed 0: 10 epochs, validation acc 0.9118, 1.2 s`.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

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
    """Use as a context manager; `start(label, seed)` announces a run and returns its per-epoch callback.

    console: where the bars go (default: stderr); bars only when it is a terminal, else one line per finished run
    written to `stream` (default: sys.stderr). enabled=False shows nothing.
    """

    def __init__(self, epochs: int, console: Console | None = None, enabled: bool = True,
                 stream: TextIO | None = None) -> None:
        self.epochs = epochs
        self.console = console or Console(stderr=True)
        self.enabled = enabled
        self.bars = enabled and self.console.is_terminal
        self.stream = stream
        self.count = 0
        self.progress = Progress(TextColumn("{task.description:<40}"), TextColumn("seed {task.fields[seed]}"),
                                 TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                                 TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(),
                                 console=self.console, disable=not self.bars)

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, label: str, seed: int | None) -> EpochCallback:
        """A new bar (or, without a terminal, a line when it ends) for run (label, seed); the returned callback
        advances it after each epoch."""
        self.count += 1
        if not self.bars:
            return self._line(label, seed, self.count)
        task = self.progress.add_task(label[:40], total=self.epochs, seed=seed, acc="-")

        def on_epoch(epoch: int, accuracy: float) -> None:
            self.progress.update(task, completed=epoch + 1, acc=f"{accuracy:.4f}")

        return on_epoch

    def _line(self, label: str, seed: int | None, number: int) -> EpochCallback:
        started = time.perf_counter()

        def on_epoch(epoch: int, accuracy: float) -> None:
            if self.enabled and epoch + 1 == self.epochs:
                stream = self.stream or sys.stderr
                print(f"[{number}] {label} seed {seed}: {epoch + 1} epochs, validation acc {accuracy:.4f}, "
                      f"{time.perf_counter() - started:.1f} s", file=stream, flush=True)

        return on_epoch
