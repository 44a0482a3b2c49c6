"""RefreshCallback: re-score the stalest samples with a no-gradient pass, so mined scores do not go stale."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hardmine._checks import check_int, to_numpy
from hardmine.sampling.sampler import HardExampleSampler


class RefreshCallback:
    """Every `every` steps, scores the `size` samples whose scores are oldest (never-seen first) with `score_fn`.

    score_fn: a function of int64 indices [M] returning their difficulty [M] (e.g. the per-sample loss of a
        forward pass under torch.no_grad()); the user writes it, so it can batch and move data as needed.
    Call it once per training step, after `sampler.update`: `refresh(sampler)`. Costs O(N) every `every` steps
    to find the stalest samples, plus the forward pass.
    """

    def __init__(self, score_fn: Callable[[np.ndarray], Any], every: int, size: int) -> None:
        if not callable(score_fn):
            raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        self.score_fn = score_fn
        self.every = check_int("every", every)
        self.size = check_int("size", size)

    def __call__(self, sampler: HardExampleSampler) -> np.ndarray | None:
        """Re-score the stalest samples when the memory's step count is a multiple of `every`; returns them."""
        memory = sampler.memory
        if memory.updates == 0 or memory.updates % self.every:
            return None
        last_step = memory.get("last_step")
        size = min(self.size, last_step.size)
        stalest = np.argpartition(last_step, size - 1)[:size].astype(np.int64)
        stalest.sort()
        sampler.update(stalest, to_numpy(self.score_fn(stalest)))
        return stalest
