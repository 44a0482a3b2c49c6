"""CrossBatchMemory (Wang et al., "Cross-Batch Memory for Embedding Learning", 2020): a ring buffer of past
embeddings, their labels and the step that made them, so a miner can mine the current batch against it."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from hardmine._checks import check_device, check_int
from hardmine.distributed import agree_on_config, agree_on_errors, all_gather_rows
from hardmine.metric.base import BaseMiner, Indices, _check_embeddings
from hardmine.state import check_state, compare_config

_STATE_KEYS = ("embeddings", "labels", "steps", "cursor")
_STATE_VERSION = 1


def _check_step(step: Any) -> int:
    """A step as stored in the int64 `steps` column: an integer in [0, 2^63 - 1]."""
    return check_int("step", step, minimum=0, maximum=torch.iinfo(torch.int64).max)


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
        if not isinstance(label_shape, (tuple, list)):
            raise TypeError(f"label_shape must be a tuple of ints, () for class ids, got {label_shape!r}")
        self.label_shape = tuple(check_int("label_shape", n) for n in label_shape)
        self.gather_distributed = bool(gather_distributed)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype (embeddings would be truncated), "
                            f"got {dtype!r}")
        device = check_device("device", device)
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
            agree_on_config("CrossBatchMemory", {**self._config(), "cursor": self.cursor, "steps": self.steps})
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

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and values (loadable with torch.load(weights_only=True)): embeddings, labels, steps,
        cursor, the constructor's arguments under "config", and "state_version"."""
        return {"embeddings": self.embeddings.clone(), "labels": self.labels.clone(),
                "steps": self.steps.clone(), "cursor": torch.tensor(self.cursor, dtype=torch.int64),
                "config": self._config(), "state_version": _STATE_VERSION}

    def _config(self) -> dict[str, Any]:
        return {"size": self.size, "embedding_dim": self.embedding_dim, "max_age": self.max_age,
                "label_shape": list(self.label_shape), "dtype": str(self.embeddings.dtype)}

    def load_state_dict(self, state: dict[str, Any], *, use_saved_config: bool = False) -> None:
        """Restore what `state_dict` returned; everything is checked before anything is assigned.

        The saved size, embedding_dim, label_shape and dtype must be this memory's; a saved max_age that differs
        is an error unless `use_saved_config=True` takes it. Embeddings must be finite, steps >= -1, the cursor
        in [0, size).
        """
        check_state(state, "CrossBatchMemory", _STATE_VERSION, (*_STATE_KEYS, "config"))
        config = state["config"]
        if not isinstance(config, dict):
            raise ValueError(f"CrossBatchMemory state['config'] must be a dict, got {type(config).__name__}")
        mine = self._config()
        fixed = {k: mine[k] for k in mine if k != "max_age"}
        compare_config("CrossBatchMemory", {k: config.get(k) for k in fixed}, fixed, use_saved_config=False)
        compare_config("CrossBatchMemory", {"max_age": config.get("max_age")}, {"max_age": self.max_age},
                       use_saved_config)
        max_age = config.get("max_age")
        max_age = None if max_age is None else check_int("state['config']['max_age']", max_age, minimum=0)
        for key in ("embeddings", "labels", "steps"):
            mine_t, theirs = getattr(self, key), state[key]
            if not isinstance(theirs, torch.Tensor):
                raise ValueError(f"state[{key!r}] must be a tensor, got {type(theirs).__name__}")
            if tuple(theirs.shape) != tuple(mine_t.shape) or theirs.dtype != mine_t.dtype:
                raise ValueError(f"state[{key!r}] has shape {tuple(theirs.shape)} and dtype {theirs.dtype}, "
                                 f"expected {tuple(mine_t.shape)} and {mine_t.dtype}")
        if not bool(torch.isfinite(state["embeddings"]).all()):
            rows = torch.nonzero(~torch.isfinite(state["embeddings"]).all(1)).flatten()
            raise ValueError(f"state['embeddings'] has non-finite values (NaN or inf) in {rows.numel()} row(s), "
                             f"e.g. rows {rows[:10].tolist()}")
        if bool((state["steps"] < -1).any()):
            raise ValueError(f"state['steps'] must be >= -1 (-1: an empty slot), got {int(state['steps'].min())}")
        cursor = state["cursor"]
        if isinstance(cursor, torch.Tensor) and cursor.numel() == 1 and not cursor.is_floating_point():
            cursor = int(cursor)
        if isinstance(cursor, bool) or not isinstance(cursor, int) or not 0 <= cursor < self.size:
            raise ValueError(f"state['cursor'] must be an integer in [0, {self.size}), got {cursor!r}")
        for key in ("embeddings", "labels", "steps"):
            getattr(self, key).copy_(state[key])
        self.cursor, self.max_age = cursor, max_age
        self._agreed = False
