"""CrossBatchMemory (Wang et al., "Cross-Batch Memory for Embedding Learning", 2020): a ring buffer of past
embeddings, their labels and the step that made them, so a miner can mine the current batch against it."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from hardmine._checks import check_device, check_int
from hardmine.distributed import agree_on_config, agree_on_errors, all_gather_rows
from hardmine.metric.base import BaseMiner, Indices, _check_embeddings
from hardmine.state import Field, Stateful, Tensor


def _check_step(step: Any) -> int:
    """A step as stored in the int64 `steps` column: an integer in [0, 2^63 - 1]."""
    return check_int("step", step, minimum=0, maximum=torch.iinfo(torch.int64).max)


class CrossBatchMemory(Stateful):
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
        if not isinstance(label_shape, (tuple, list)):
            raise TypeError(f"label_shape must be a tuple of ints, () for class ids, got {label_shape!r}")
        self.label_shape = tuple(check_int("label_shape", n) for n in label_shape)
        self.gather_distributed = bool(gather_distributed)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype (embeddings would be truncated), "
                            f"got {dtype!r}")
        self.device, self.dtype = check_device("device", device), dtype
        device = self.device
        self.embeddings = torch.zeros((self.size, self.embedding_dim), dtype=dtype, device=device)
        self.labels = torch.zeros((self.size, *self.label_shape), dtype=torch.int64, device=device)
        self.steps = torch.full((self.size,), -1, dtype=torch.int64, device=device)
        self.cursor = 0
        self._agreed = False  # whether the ranks agreed on the configuration and state (`_agree`)

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

    @property
    def _gathers(self) -> bool:
        return self.gather_distributed and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def _agree(self) -> None:
        """At the first gathering call (and the first after `load_state_dict`) the ranks agree on what must match
        (`agree_on_config`): the configuration, the cursor and the slots' steps. A difference raises the same
        DisagreementError, naming the field and each rank's value, on every rank, before any data collective."""
        if self._gathers and not self._agreed:
            agree_on_config("CrossBatchMemory", {**self.saved_config(), "cursor": self.cursor, "steps": self.steps})
            self._agreed = True

    def _check_batch(self, embeddings: Any, labels: Any, step: Any) -> tuple[torch.Tensor, torch.Tensor, int]:
        x = _check_embeddings("embeddings", embeddings)
        if x.shape[1] != self.embedding_dim:
            raise ValueError(f"embeddings has dim {x.shape[1]} but the memory holds dim {self.embedding_dim}")
        limit = torch.finfo(self.embeddings.dtype).max
        if limit < torch.finfo(x.dtype).max and x.numel():  # a narrower storage dtype: inf would be stored
            largest = float(x.abs().max())
            if largest > limit:
                raise ValueError(f"embeddings hold values up to {largest:.3g} in magnitude, beyond what the memory's "
                                 f"dtype {self.embeddings.dtype} stores ({limit:.3g}); scale them down or build the "
                                 "memory with a wider dtype")
        return x, self._check_labels(labels, x.shape[0]).to(x.device), _check_step(step)

    def enqueue(self, embeddings: torch.Tensor, labels: Any, step: int) -> None:
        """Store a batch [B, embedding_dim] (detached) with its labels as made at `step`; oldest slots go first.

        Under torch.distributed (gather_distributed), the ranks agree on the validity of their batches first:
        a bad batch on any rank raises the same ValueError on every rank, and no rank's memory changes; at the
        first call the ranks agree on the memory's configuration and state (a difference raises on every rank)."""
        self._agree()
        with agree_on_errors("CrossBatchMemory.enqueue", enabled=self._gathers):
            x, labels, step = self._check_batch(embeddings, labels, step)
        self._store(x, labels, step)

    def _store(self, x: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        if self._gathers:
            x, labels = all_gather_rows(x), all_gather_rows(labels)
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
        losses; self pairs of the batch are excluded. Under torch.distributed the ranks agree on the validity of
        their inputs (and on the miner succeeding) before the batch is gathered: all raise, or none does; at the
        first call they agree on the memory's configuration (size, embedding_dim, max_age, label_shape, dtype) and
        state (cursor, steps): a difference raises the same DisagreementError on every rank.
        """
        self._agree()
        with agree_on_errors("CrossBatchMemory.mine", enabled=self._gathers):
            x, labels, step = self._check_batch(embeddings, labels, step)
            memory_emb, memory_labels = self.get(step)
            ref_emb = torch.cat([embeddings, memory_emb.to(embeddings.device, embeddings.dtype)])
            ref_labels = torch.cat([labels, memory_labels.to(x.device)])
            indices = miner(x, labels, ref_emb.detach(), ref_labels, ref_starts_with_batch=True)
        self._store(x, labels, step)
        return indices, ref_emb, ref_labels

    # state: the slots and the cursor, tensors on the memory's device (state_dict() copies them); the saved
    # configuration (size, embedding_dim, max_age, label_shape, dtype) is derived from __init__'s signature
    state_fields = {"embeddings": Tensor(ndim=2), "labels": Tensor("int64", ndim=None),
                    "steps": Tensor("int64", low=-1), "cursor": Field("any")}
    config_exclude = ("gather_distributed", "device")  # how this process runs, not what the memory holds
    config_fixed = ("size", "embedding_dim", "label_shape", "dtype")

    def _state_values(self) -> dict[str, Any]:
        return {"embeddings": self.embeddings, "labels": self.labels, "steps": self.steps,
                "cursor": torch.tensor(self.cursor, dtype=torch.int64)}

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """Each slot tensor of this memory's shape and dtype; the cursor in [0, size)."""
        for key in ("embeddings", "labels", "steps"):
            mine, theirs = getattr(self, key), values[key]
            if tuple(theirs.shape) != tuple(mine.shape) or theirs.dtype != mine.dtype:
                raise ValueError(f"CrossBatchMemory state[{key!r}] has shape {tuple(theirs.shape)} and dtype "
                                 f"{theirs.dtype}, expected {tuple(mine.shape)} and {mine.dtype}")
        cursor = values["cursor"]  # saved as a 0-d int64 tensor; an int is read too
        if isinstance(cursor, torch.Tensor) and cursor.numel() == 1 and not cursor.is_floating_point():
            cursor = int(cursor)
        if isinstance(cursor, bool) or not isinstance(cursor, int) or not 0 <= cursor < self.size:
            raise ValueError(f"CrossBatchMemory state['cursor'] must be an integer in [0, {self.size}), got "
                             f"{cursor!r}")
        return {**values, "cursor": cursor}

    def _assign_state(self, values: dict[str, Any]) -> None:
        for key in ("embeddings", "labels", "steps"):
            getattr(self, key).copy_(values[key])  # into the buffers, on their device
        self.cursor = values["cursor"]

    def _after_load(self) -> None:
        self._agreed = False  # the ranks agree again on the loaded state
