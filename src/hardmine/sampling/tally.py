"""The sampler's own numbers for `HardExampleSampler.stats`: classes drawn this epoch, time spent mining, the
last weights asked for and the last update's weights and losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hardmine.sampling.chunking import Chunk
from hardmine.sampling.memory import ScoreMemory


class Tally:
    """Counters that feed `stats()`; none of them changes a draw."""

    def __init__(self, num_classes: int) -> None:
        self.drawn_per_class = np.zeros(max(num_classes, 1), dtype=np.int64)
        self.counted = 0  # batches of the epoch (drawn) whose classes are counted
        self.mining_seconds = 0.0
        self.last_weights: torch.Tensor | None = None
        self.last_update: tuple[torch.Tensor, Any] | None = None  # (weights [B], host values [B] of the losses)

    def new_epoch(self) -> None:
        """Nothing drawn yet this epoch."""
        self.drawn_per_class[:] = 0
        self.counted = 0

    def count_drawn(self, chunk: Chunk, labels: np.ndarray | None) -> None:
        """Count the classes of the chunk's batches drawn for the first time this epoch, in one bincount."""
        if chunk.end > self.counted:
            if labels is not None:
                drawn = labels[np.concatenate([s.indices for s in chunk.shares[max(self.counted - chunk.first, 0):]])]
                self.drawn_per_class += np.bincount(drawn, minlength=self.drawn_per_class.size)
            self.counted = chunk.end

    def report(self, memory: ScoreMemory, policy: Any, epoch: int, consumed: int, length: int) -> dict[str, float]:
        """`HardExampleSampler.stats()`, O(N).

        Under torch.distributed its numbers are this rank's, like Lightning's `self.log` without `sync_dist`:
        those of the memory (scores, ages, seen) are every rank's alike, since every rank writes every update; the
        per-batch ones (weights, loss_variance, class_share) are of this rank's share of the batches.

        epoch, batch, num_batches; fraction_seen; score_mean/max; keep_ratio (policies that keep a part);
        weight_mean/min/max of the last weights asked for; loss_variance: variance of the weighted per-sample
        losses of the last updated batch (a gradient-variance proxy: instability shows here first);
        age_median/age_p90/age_max: steps since each seen sample was last scored; stale_fraction: seen samples
        not scored for more than an epoch of steps; noise_suspects; class_share/<c> and data_share/<c>: each
        class's share of the samples drawn this epoch and of the data set; mining_seconds: time spent in the
        sampler's chunk-level work (drawing chunks, writing queued updates, epoch starts); the per-call checks
        and lookups of `update` and `weights` are not timed (timing them would cost about as much as they do).
        """
        seen = memory.get("seen") > 0
        scores = memory.get("score")[seen]
        out = {"epoch": float(epoch), "batch": float(consumed), "num_batches": float(length),
               "fraction_seen": float(seen.mean()),
               "score_mean": float(scores.mean()) if scores.size else float("nan"),
               "score_max": float(scores.max()) if scores.size else float("nan")}
        out.update(policy.stats())
        if self.last_weights is not None:
            w = self.last_weights.cpu().numpy()
            out.update(weight_mean=float(w.mean()), weight_min=float(w.min()), weight_max=float(w.max()))
        if self.last_update is not None:
            weights, losses = self.last_update
            out["loss_variance"] = float(np.var(weights.cpu().numpy() * losses.array()))
        if scores.size:
            age = memory.updates - 1 - memory.get("last_step")[seen]
            out.update(age_median=float(np.median(age)), age_p90=float(np.quantile(age, 0.9)),
                       age_max=float(age.max()), stale_fraction=float((age > length).mean()))
        out.update(policy.guard_stats())
        drawn = self.drawn_per_class
        if memory.labels is not None and drawn.sum():
            data = np.bincount(memory.labels, minlength=drawn.size) / memory.num_samples
            drawn = drawn / drawn.sum()
            for c in range(drawn.size):
                out[f"class_share/{c}"], out[f"data_share/{c}"] = float(drawn[c]), float(data[c])
        out["mining_seconds"] = self.mining_seconds
        return out
