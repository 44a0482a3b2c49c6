"""The update pipeline: what `HardExampleSampler.update` does with one batch's values, in one path.

check (indices, dtypes, shapes) -> host copy (`HostValues`: a non-blocking copy from an accelerator, or a float64
copy with its range on the host) -> the memory's and the policy's checks of the values (now when they are on the
host, else when they arrive) -> the memory's write queue (`ScoreMemory.enqueue`), which the memory drains itself.

The checks of values on the host cost one min and one max in the common case (scores alone): the memory's columns
accept every value in `ScoreMemory.value_range("scores")`, and a `monotone` priority policy's priorities are
checked at the batch's extremes (`PriorityPolicy.check_batch_scores`); anything else gets the full checks, which
also name what is bad.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

from hardmine.sampling.host_copy import HostValues
from hardmine.sampling.memory import ScoreMemory

LOSS = "per_sample_loss"  # how errors name the scores


class UpdatePipeline:
    """Checks one batch's values and queues them on `memory` for `policy` (its `check_scores`), under `tag`."""

    def __init__(self, memory: ScoreMemory, policy: Any, tag: Hashable) -> None:
        self.memory, self.policy, self.tag = memory, policy, tag

    def receive(self, local: np.ndarray, per_sample_loss: Any, stats: dict[str, Any]) -> dict[str, HostValues]:
        """Host copies of the scores [B] and the statistics [B] of the samples `local` [B] (validated int64), by
        source name ("scores" first, then the statistics sorted: every rank gathers them in one order); raises
        for a wrong dtype or length, or for NaN or inf already on the host."""
        values = {"scores": HostValues(LOSS, per_sample_loss, local)}
        if stats:
            self.memory.check_statistics(stats)
            values.update((name, HostValues(name, v, local)) for name, v in sorted(stats.items()) if v is not None)
        return values

    def check(self, local: np.ndarray, values: dict[str, HostValues]) -> dict[str, np.ndarray]:
        """The memory's and the policy's checks of values on the host (waits for any still arriving); returns
        them as float64 arrays [B] by source. Raises, naming the values, before anything is written."""
        host = {name: v.array() for name, v in values.items()}
        scores = host["scores"]
        if len(host) == 1 and scores.size:
            extremes = values["scores"].extremes
            if extremes is None:
                extremes = float(scores.min()), float(scores.max())
            low, high = self.memory.value_range("scores")
            if low <= extremes[0] and extremes[1] <= high:  # every column takes them (NaN ranges fail)
                self.policy.check_batch_scores(LOSS, local, scores, self.memory, extremes)
                return host
        self.validate(local, host)
        return host

    def validate(self, local: np.ndarray, host: dict[str, np.ndarray]) -> None:
        """The full checks of values [B] (by source) on the host: the memory's `check_update` and the policy's
        `check_scores`; also run by the memory's queue on values that arrived late."""
        stats = {name: v for name, v in host.items() if name != "scores"}
        _, checked, _ = self.memory.check_update(local, host["scores"], score_name=LOSS, **stats)
        self.policy.check_scores(LOSS, local, checked["scores"], self.memory)

    def queue(self, idx: np.ndarray, values: dict[str, Any], checked: bool) -> None:
        """Hand the batch (indices [M], values [M] by source: arrays, or host copies still arriving) to the
        memory's write queue; values not `checked` yet are checked by `validate` when they arrive."""
        self.memory.enqueue(idx, values, validate=None if checked else self.validate, tag=self.tag)
