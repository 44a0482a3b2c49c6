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
        self.pending: list[str] = []  # without a terminal: the line of a run that stopped before its last epoch
        self.progress = Progress(TextColumn("{task.description:<40}"), TextColumn("seed {task.fields[seed]}"),
                                 TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
                                 TextColumn("acc {task.fields[acc]}"), TimeElapsedColumn(),
                                 console=self.console, disable=not self.bars)

    def __enter__(self) -> RunProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._flush()
        self.progress.stop()

    def _flush(self) -> None:
        for line in self.pending:
            print(line, file=self.stream or sys.stderr, flush=True)
        self.pending.clear()

    def start(self, label: str, seed: int | None) -> EpochCallback:
        """A new bar (or, without a terminal, a line when it ends) for run (label, seed); the returned callback
        advances it after each epoch."""
        self.count += 1
        if not self.bars:
            self._flush()
            return self._line(label, seed, self.count)
        task = self.progress.add_task(label[:40], total=self.epochs, seed=seed, acc="-")

        def on_epoch(epoch: int, accuracy: float) -> None:
            self.progress.update(task, completed=epoch + 1, acc=f"{accuracy:.4f}")

        return on_epoch

    def _line(self, label: str, seed: int | None, number: int) -> EpochCallback:
        started = time.perf_counter()
        if self.enabled:
            self.pending = [f"[{number}] {label} seed {seed}: stopped before its first epoch ended (diverged)"]

        def on_epoch(epoch: int, accuracy: float) -> None:
            if not self.enabled:
                return
            done = epoch + 1 == self.epochs
            text = (f"[{number}] {label} seed {seed}: {epoch + 1} epochs, validation acc {accuracy:.4f}, "
                    f"{time.perf_counter() - started:.1f} s")
            self.pending = [] if done else [text + f" (stopped: {self.epochs} epochs planned, diverged)"]
            if done:
                print(text, file=self.stream or sys.stderr, flush=True)

        return on_epoch
