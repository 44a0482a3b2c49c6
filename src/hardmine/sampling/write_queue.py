"""The memory's own write queue: batches of updates that a ScoreMemory writes later, in order, by itself.

A sampler checks each update when it is made and hands it to `ScoreMemory.enqueue`; the memory writes the queued
batches in one vectorised pass when it drains (the sampler asks every `chunk` batches and before a draw; every
read or write of the memory drains first), so the memory always reads as if each update had been written when it
was made. Values still being copied from an accelerator are checked when they arrive (`validate`), before
anything is written. Nothing here calls back into the writer: a writer learns which samples were written by
asking (`ScoreMemory.take_written`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

Validate = Callable[[np.ndarray, dict[str, np.ndarray]], None]
"""validate(indices [M], {source: float64 [M]}): raises TypeError or ValueError (naming the argument) for values
that arrived bad; writes nothing."""

Write = Callable[[np.ndarray, dict[str, np.ndarray], "np.ndarray | None", int, Hashable], None]
"""write(indices [M], {source: [M]}, batch numbers [M] or None, batches, tag): the memory's vectorised write."""


@dataclass
class QueuedWrite:
    """One batch's update: validated int64 indices [M] and its values by source: float64 arrays [M], checked, or
    host copies still arriving (objects with `ready` and `array()`, e.g. `HostValues`), checked by `validate`."""

    indices: np.ndarray
    values: dict[str, Any]
    validate: Validate | None = None
    tag: Hashable = None

    @property
    def ready(self) -> bool:
        """Whether every value is on the host (always for arrays; for a copy from an accelerator once it ended)."""
        return all(getattr(v, "ready", True) for v in self.values.values())

    def arrived(self) -> dict[str, np.ndarray]:
        """The values as float64 arrays, checked (waits for copies still on their way)."""
        host = {name: v if isinstance(v, np.ndarray) else v.array() for name, v in self.values.items()}
        if self.validate is not None:
            self.validate(self.indices, host)
        self.values, self.validate = host, None
        return host


class WriteQueue:
    """Queued batches in the order they were made."""

    def __init__(self) -> None:
        self.entries: list[QueuedWrite] = []

    def __len__(self) -> int:
        return len(self.entries)

    def put(self, entry: QueuedWrite) -> None:
        """Queue `entry` after the others."""
        self.entries.append(entry)

    def drain(self, write: Write, wait: bool = True) -> None:
        """Write the queued batches through `write`, in order: all of them with `wait`, else those whose values
        have arrived, up to the first that has not. Consecutive batches with the same sources and tag are one
        write. A batch whose late values fail their check is dropped (the others stay queued) and the error
        raised; nothing is written then."""
        count = len(self.entries)
        if not wait:
            count = 0
            while count < len(self.entries) and self.entries[count].ready:
                count += 1
        taken, self.entries = self.entries[:count], self.entries[count:]
        arrays = []
        for position, entry in enumerate(taken):
            try:
                arrays.append(entry.arrived())
            except (TypeError, ValueError):
                self.entries = taken[:position] + taken[position + 1:] + self.entries
                raise
        start = 0
        while start < len(taken):
            end = start + 1
            while end < len(taken) and taken[end].tag == taken[start].tag and \
                    arrays[end].keys() == arrays[start].keys():
                end += 1
            write(*_concatenate(taken[start:end], arrays[start:end]), end - start, taken[start].tag)
            start = end

    def clear(self) -> None:
        """Drop every queued batch."""
        self.entries = []


def _concatenate(entries: list[QueuedWrite],
                 arrays: list[dict[str, np.ndarray]]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
    """(indices [M], values by source [M], batch number [M] or None for one batch) of consecutive entries."""
    if len(entries) == 1:
        return entries[0].indices, arrays[0], None
    sizes = [e.indices.size for e in entries]
    indices = np.concatenate([e.indices for e in entries])
    values = {name: np.concatenate([a[name] for a in arrays]) for name in arrays[0]}
    return indices, values, np.repeat(np.arange(len(entries)), sizes)
