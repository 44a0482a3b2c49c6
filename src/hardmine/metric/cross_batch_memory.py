"""CrossBatchMemory (Wang et al., "Cross-Batch Memory for Embedding Learning", 2020): a ring buffer of past
embeddings, their labels and the step that made them, so a miner can mine the current batch against it."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from hardmine._checks import check_int
from hardmine.metric.base import BaseMiner, Indices, _check_embeddings

_STATE_KEYS = ("embeddings", "labels", "steps", "cursor")


def _all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate, in rank order, a tensor whose first dimension may differ between ranks."""
    world = dist.get_world_size()
    size = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    padded = tensor.new_zeros((max(counts), *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)])


def _check_step(step: Any) -> int:
    return check_int("step", step, minimum=0)


class CrossBatchMemory:
    """A ring buffer of `size` past embeddings [size, embedding_dim] with int64 labels and the step of each.

    max_age: entries made more than `max_age` steps before the current step are stale and left out
        (None: entries stay until overwritten).
    label_shape: the shape of one label, () for class ids, (C,) for multi-hot labels.
    gather_distributed: under torch.distributed with several ranks, `enqueue` all-gathers every rank's batch
        (embeddings and labels separately, labels stay int64) so all ranks hold the same memory.
    device, dtype: where and how the embeddings are stored.
    """

    def __init__(self, size: int, embedding_dim: int, max_age: int | None = None,
                 label_shape: tuple[int, ...] = (), gather_distributed: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> None:
        self.size = check_int("size", size)
        self.embedding_dim = check_int("embedding_dim", embedding_dim)
        self.max_age = None if max_age is None else check_int("max_age", max_age, minimum=0)
        self.label_shape = tuple(check_int("label_shape", n) for n in label_shape)
        self.gather_distributed = bool(gather_distributed)
        self.embeddings = torch.zeros((self.size, self.embedding_dim), dtype=dtype, device=device)
        self.labels = torch.zeros((self.size, *self.label_shape), dtype=torch.int64, device=device)
        self.steps = torch.full((self.size,), -1, dtype=torch.int64, device=device)
        self.cursor = 0

    def __len__(self) -> int:
        """How many slots hold an entry (stale or not)."""
        return int((self.steps >= 0).sum())

    def _check_labels(self, labels: Any, rows: int) -> torch.Tensor:
        labels = torch.as_tensor(labels)
        if labels.is_floating_point() or labels.is_complex():
            raise TypeError(f"labels must hold integers, got dtype {labels.dtype}")
        if tuple(labels.shape) != (rows, *self.label_shape):
            raise ValueError(f"labels must have shape {(rows, *self.label_shape)}, got {tuple(labels.shape)}")
        return labels.to(torch.int64)

    def enqueue(self, embeddings: torch.Tensor, labels: Any, step: int) -> None:
        """Store a batch [B, embedding_dim] (detached) with its labels as made at `step`; oldest slots go first."""
        x = _check_embeddings("embeddings", embeddings)
        if x.shape[1] != self.embedding_dim:
            raise ValueError(f"embeddings has dim {x.shape[1]} but the memory holds dim {self.embedding_dim}")
        labels = self._check_labels(labels, x.shape[0]).to(x.device)
        step = _check_step(step)
        if self.gather_distributed and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            x, labels = _all_gather_rows(x), _all_gather_rows(labels)
        x, labels = x[-self.size:], labels[-self.size:]
        slots = (self.cursor + torch.arange(x.shape[0], device=self.steps.device)) % self.size
        self.embeddings[slots] = x.to(self.embeddings.device, self.embeddings.dtype)
        self.labels[slots] = labels.to(self.labels.device)
        self.steps[slots] = step
        self.cursor = (self.cursor + x.shape[0]) % self.size

    def fresh(self, step: int | None = None) -> torch.Tensor:
        """Slots (int64, oldest first) that hold an entry no older than `max_age` steps at `step`."""
        order = (self.cursor + torch.arange(self.size, device=self.steps.device)) % self.size
        ok = self.steps[order] >= 0
        if self.max_age is not None and step is not None:
            ok &= self.steps[order] >= _check_step(step) - self.max_age
        return order[ok]

    def get(self, step: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The fresh entries at `step`, oldest first: (embeddings [K, dim], labels [K, *label_shape])."""
        slots = self.fresh(step)
        return self.embeddings[slots], self.labels[slots]

    def mine(self, miner: BaseMiner, embeddings: torch.Tensor, labels: Any,
             step: int) -> tuple[Indices, torch.Tensor, torch.Tensor]:
        """Mine the batch against itself and the fresh memory, then enqueue it.

        Returns (indices, ref_emb, ref_labels): ref_emb is `embeddings` (with its gradient) followed by the
        memory's fresh entries, so `loss(embeddings, labels, indices, ref_emb, ref_labels)` works with PML
        losses; self pairs of the batch are excluded.
        """
        x = _check_embeddings("embeddings", embeddings)
        labels = self._check_labels(labels, x.shape[0]).to(x.device)
        memory_emb, memory_labels = self.get(step)
        ref_emb = torch.cat([embeddings, memory_emb.to(embeddings.device, embeddings.dtype)])
        ref_labels = torch.cat([labels, memory_labels.to(x.device)])
        indices = miner(x, labels, ref_emb.detach(), ref_labels, ref_starts_with_batch=True)
        self.enqueue(x, labels, step)
        return indices, ref_emb, ref_labels

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors (loadable with torch.load(weights_only=True)): embeddings, labels, steps, cursor."""
        return {"embeddings": self.embeddings.clone(), "labels": self.labels.clone(),
                "steps": self.steps.clone(), "cursor": torch.tensor(self.cursor, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `state_dict` returned; shapes and dtypes must match this memory's."""
        missing = [k for k in _STATE_KEYS if k not in state]
        if missing:
            raise KeyError(f"state is missing {missing}")
        for key in ("embeddings", "labels", "steps"):
            mine, theirs = getattr(self, key), state[key]
            if tuple(theirs.shape) != tuple(mine.shape) or theirs.dtype != mine.dtype:
                raise ValueError(f"state[{key!r}] has shape {tuple(theirs.shape)} and dtype {theirs.dtype}, "
                                 f"expected {tuple(mine.shape)} and {mine.dtype}")
        cursor = int(state["cursor"])
        if not 0 <= cursor < self.size:
            raise ValueError(f"state['cursor'] must be in [0, {self.size}), got {cursor}")
        for key in ("embeddings", "labels", "steps"):
            getattr(self, key).copy_(state[key])
        self.cursor = cursor
