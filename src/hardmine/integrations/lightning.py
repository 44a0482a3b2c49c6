"""HardMiningCallback: hard example mining in a Lightning (pytorch_lightning 2.x) Trainer, with one call in the step.

```python
miner = HardMiningCallback(policy="importance", batch_size=64)
def train_dataloader(self): return miner.dataloader(train_set, num_workers=2)
def training_step(self, batch, i):
    idx, x, y = batch
    return miner.loss(idx, F.cross_entropy(self(x), y, reduction="none"))
trainer = L.Trainer(callbacks=[miner], ...)
```
Install with the `lightning` extra (`pip install hardmine[lightning]`).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torch.utils.data._utils.collate import default_collate

import hardmine as hm
from hardmine.integrations._state import check_extra, restore, state_of
from hardmine.integrations._step import by_progress, mined_loss


class _BatchFetch(Dataset):
    """Item `indices` (a batch the sampler drew) is the collated batch `(indices, *dataset[i] for i in indices)`."""

    def __init__(self, dataset: Any, collate_fn: Callable[[list], Any]) -> None:
        self.dataset, self.collate_fn = hm.WithIndex(dataset), collate_fn

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: list[int]) -> Any:
        return self.collate_fn([self.dataset[i] for i in indices])


class _DrawnBatches(DistributedSampler):
    """The DataLoader's sampler: the batches of a HardExampleSampler, one item per batch.

    It is a DistributedSampler because its batches are already this process's share (the HardExampleSampler
    reads rank and world size when an epoch starts): Lightning then leaves it in place under DDP with the
    default `use_distributed_sampler=True`, and its `set_epoch` reaches the HardExampleSampler.
    """

    def __init__(self, dataset: Dataset, sampler: hm.HardExampleSampler) -> None:
        super().__init__(dataset, num_replicas=1, rank=0, shuffle=False)
        self.batches = sampler

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the HardExampleSampler (Lightning calls it at each epoch start)."""
        self.batches.set_epoch(epoch)


def _limited(length: int, limit: int | float | None) -> int:
    """An epoch's batches under `limit_train_batches` (an int caps them, a float takes that part), as Lightning
    counts them."""
    if isinstance(limit, int):
        return min(length, limit)
    if isinstance(limit, float):
        return int(length * limit)
    return length


_SCHED = torch.optim.lr_scheduler
# Step-based schedules with a horizon, made to follow the run's progress: the attribute that holds the horizon,
# and whether the lr is recomputed in closed form (the schedule's own `step` chains from the previous value).
_HORIZONS: dict[type, tuple[str, bool]] = {_SCHED.LinearLR: ("total_iters", True),
                                           _SCHED.ConstantLR: ("total_iters", True),
                                           _SCHED.PolynomialLR: ("total_iters", True),
                                           _SCHED.CosineAnnealingLR: ("T_max", True),
                                           _SCHED.OneCycleLR: ("total_steps", False)}
_FOLLOWING: weakref.WeakSet = weakref.WeakSet()  # the schedules made to follow a run's progress


def _follow_progress(scheduler: Any, target: Callable[[], int], closed_form: bool) -> None:
    """Make `scheduler.step()` set the schedule at step `target()` (its `last_epoch`), instead of one further.

    The step is a subclass's (same name), so the scheduler's `state_dict` (its `__dict__`) stays plain values.
    """
    base = type(scheduler)

    def step(self: Any, *args: Any, **kwargs: Any) -> None:
        self.last_epoch = target() - 1
        base.step(self, *args, **kwargs)  # last_epoch = target(), with the schedule's counters and checks
        if closed_form:  # its own step chains from the previous lr, one step further
            for group, lr in zip(self.optimizer.param_groups, self._get_closed_form_lr()):
                group["lr"] = lr
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    scheduler.__class__ = type(base.__name__, (base,), {"step": step, "__module__": base.__module__})


class HardMiningCallback(pl.Callback):
    """Owns a ScoreMemory and a HardExampleSampler for a LightningModule's training data.

    policy: a registered policy name or a Policy object (see `hardmine.POLICIES`). The default, "importance",
        draws hard samples more often with unbiased weights (normalize="none"), so the step size stays the one the
        optimiser was given; measured within noise of uniform on clean data (docs/benchmarks.md): check yours with
        `hardmine compare`, and prefer "class_balanced" on long-tailed classes.
    batch_size: B, samples per batch on each process.
    seed: every rank draws from the same seeded streams (give each run its own).
    drop_last, num_batches: as for `HardExampleSampler`.
    labels: optional int labels [N] for class-aware guards; by default the data set's `targets`, if any.
    extra_state: name -> object with `state_dict`/`load_state_dict` (a CrossBatchMemory, a NegativePool)
        checkpointed and restored with the sampler, so it resumes exactly too (both keep every rank identical).

    `dataloader(train_set)` builds the memory and the sampler (`.memory`, `.sampler`) and the DataLoader;
    `loss(idx, per_sample_loss)` is the training step's one call. The callback keeps the sampler's epoch in step
    with the trainer's, saves sampler and memory in Lightning's checkpoints (plain tensors and numbers: loadable
    with `torch.load(weights_only=True)`) and restores them on `fit(ckpt_path=...)`, works under `strategy="ddp"`
    with the default `use_distributed_sampler=True`, and logs `sampler.stats()` as `hardmine/<name>` through the
    trainer's logger at each epoch end.

    Each epoch's number of batches is the sampler's `len()` at the epoch's start (the trainer's
    `num_training_batches` follows it). A policy whose epoch lengths depend on the scores (prune_easy, self_paced,
    the pacing policies) cannot know its later epochs' lengths in advance, so `trainer.estimated_stepping_batches`
    (the first epoch's length x max_epochs) is not the number of steps the run takes. In a run bounded by epochs
    (`max_steps=-1`), the callback then makes the step-interval LR schedules follow the run's progress: the
    schedule is set at step `round(p * T)` after each step, p the fraction of `max_epochs` done (epochs done plus
    the consumed part of the current one), so it ends at its final value on the last step. T is the horizon the
    schedule holds (LinearLR, ConstantLR, PolynomialLR `total_iters`, CosineAnnealingLR `T_max`, OneCycleLR
    `total_steps`) or, for a LambdaLR (and the transformers schedules built on it), its lambdas evaluated at
    step `round(p * trainer.estimated_stepping_batches)`: size it with `estimated_stepping_batches`. Other
    step-interval schedules (StepLR, CyclicLR, SequentialLR, ...) step by count, with a warning naming them;
    uniform and priority policies (exact epoch lengths), a fixed `num_batches` and `max_steps` runs are left as
    they are.
    """

    def __init__(self, policy: str | hm.Policy = "importance", batch_size: int = 64, seed: int = 0,
                 drop_last: bool = False, num_batches: int | None = None, labels: Any = None,
                 extra_state: Mapping[str, Any] | None = None) -> None:
        self._policy = hm.build_policy(policy)
        self._sampler_args = {"batch_size": batch_size, "seed": seed, "drop_last": drop_last,
                              "num_batches": num_batches}
        hm.HardExampleSampler(hm.ScoreMemory(1), policy=hm.build_policy("uniform"), **self._sampler_args)  # checks
        self._labels = labels
        self._extra = check_extra(extra_state or {})
        self._memory: hm.ScoreMemory | None = None
        self._sampler: hm.HardExampleSampler | None = None
        self._pending_state: dict[str, Any] | None = None

    @property
    def memory(self) -> hm.ScoreMemory:
        """The ScoreMemory of the training data (built by `dataloader`)."""
        return self._built()[0]

    @property
    def sampler(self) -> hm.HardExampleSampler:
        """The HardExampleSampler that draws the training batches (built by `dataloader`)."""
        return self._built()[1]

    def _built(self) -> tuple[hm.ScoreMemory, hm.HardExampleSampler]:
        if self._sampler is None:
            raise RuntimeError("HardMiningCallback has no data yet: return miner.dataloader(train_set) from the "
                               "LightningModule's train_dataloader()")
        return self._memory, self._sampler

    def dataloader(self, dataset: Any, collate_fn: Callable[[list], Any] = default_collate,
                   **loader_kwargs: Any) -> DataLoader:
        """A DataLoader of `(idx, *dataset[idx])` batches drawn by this callback's sampler.

        dataset: map-style (`__getitem__` and `__len__`) of N samples; its items may be tuples or single values.
        loader_kwargs: DataLoader options (num_workers, pin_memory, persistent_workers, ...); batch_size, shuffle,
            sampler, batch_sampler and drop_last are the sampler's and refused here.
        Called again (e.g. `reload_dataloaders_every_n_epochs`), it reuses the memory and the sampler.
        """
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must be map-style (with __getitem__ and __len__), got {type(dataset).__name__}")
        clash = sorted({"batch_size", "shuffle", "sampler", "batch_sampler", "drop_last"} & set(loader_kwargs))
        if clash:
            raise ValueError(f"dataloader() got {clash}: batching belongs to the callback; set batch_size and "
                             "drop_last on HardMiningCallback")
        if self._sampler is None:
            labels = self._labels if self._labels is not None else getattr(dataset, "targets", None)
            memory = hm.ScoreMemory(len(dataset), labels=labels)
            sampler = hm.HardExampleSampler(memory, policy=self._policy, **self._sampler_args)
            if self._pending_state is not None:
                restore(memory, sampler, self._extra, self._pending_state)
                self._pending_state = None
            self._memory, self._sampler = memory, sampler
        elif len(dataset) != self._memory.num_samples:
            raise ValueError(f"dataset has {len(dataset)} samples but this callback's memory holds "
                             f"{self._memory.num_samples}: use one HardMiningCallback per training set")
        fetch = _BatchFetch(dataset, collate_fn)
        return DataLoader(fetch, sampler=_DrawnBatches(fetch, self._sampler), batch_size=None, **loader_kwargs)

    def loss(self, indices: Any, per_sample_loss: torch.Tensor) -> torch.Tensor:
        """The loss to return from `training_step`: records `per_sample_loss` [B] (with gradient) of the samples
        `indices` [B] in the memory, and reduces it with the sampler's importance weights to a scalar."""
        return mined_loss(self.sampler, indices, per_sample_loss)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Refuse a training DataLoader that does not draw from this callback's sampler."""
        loaders = trainer.train_dataloader
        loaders = loaders.values() if isinstance(loaders, dict) else loaders if isinstance(loaders, (list, tuple)) \
            else [loaders]
        if self._sampler is None or not any(isinstance(getattr(dl, "sampler", None), _DrawnBatches)
                                            and dl.sampler.batches is self._sampler for dl in loaders):
            raise RuntimeError("the training DataLoader does not draw from this HardMiningCallback's sampler: "
                               "return miner.dataloader(train_set, ...) from train_dataloader()")
        if len(loaders) == 1 and self._varies(trainer):
            self._schedules_follow_progress(trainer)

    def _varies(self, trainer: pl.Trainer) -> bool:
        """Whether the run ends by epochs whose lengths the policy decides as it goes."""
        policy = self._policy
        return (isinstance(policy, hm.SubsetPolicy) and not isinstance(policy, hm.UniformPolicy)
                and self._sampler_args["num_batches"] is None and trainer.max_steps == -1
                and trainer.max_epochs not in (None, -1))

    def _schedules_follow_progress(self, trainer: pl.Trainer) -> None:
        """Make each step-interval LR schedule follow the fraction of the run done (see the class docstring)."""
        sampler, epochs = self.sampler, trainer.max_epochs

        def progress() -> float:
            batches = trainer.num_training_batches  # this epoch's (on_train_epoch_start sets it)
            done = min(1.0, sampler.position / batches) if batches else 1.0
            return min(1.0, (trainer.current_epoch + done) / epochs)

        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            if config.interval != "step" or config.reduce_on_plateau or scheduler in _FOLLOWING:
                continue
            name = type(scheduler).__name__
            if config.frequency != 1:
                warnings.warn(f"{name} steps every {config.frequency} steps: it follows the steps taken, not the "
                              "run's progress, and this policy decides each epoch's length as it starts",
                              stacklevel=2)
                continue
            if isinstance(scheduler, _SCHED.LambdaLR):
                horizon = int(trainer.estimated_stepping_batches)
                scheduler.lr_lambdas = [by_progress(f, progress, horizon)
                                        for f in scheduler.lr_lambdas]
            elif type(scheduler) in _HORIZONS:
                attribute, closed_form = _HORIZONS[type(scheduler)]
                horizon = int(getattr(scheduler, attribute))
                _follow_progress(scheduler, lambda h=horizon: round(progress() * h), closed_form)
            else:
                warnings.warn(f"{name} follows the number of steps taken, not the run's progress, and this policy "
                              "decides each epoch's length as it starts: the run takes a number of steps that "
                              "trainer.estimated_stepping_batches cannot tell (use LinearLR, CosineAnnealingLR, "
                              "OneCycleLR or a LambdaLR, which the callback makes follow the progress, or "
                              "max_steps)", stacklevel=2)
                continue
            _FOLLOWING.add(scheduler)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the sampler's epoch the trainer's (also when `limit_train_batches` ends epochs early), and the
        trainer's batches of this epoch (`num_training_batches`: the progress bar's total, the epoch's end) the
        sampler's `len()`: Lightning reads the length once, at setup, but a policy such as prune_easy decides
        each epoch's length when it starts."""
        self.sampler.set_epoch(trainer.current_epoch)
        loop = trainer.fit_loop
        combined = getattr(loop, "_combined_loader", None)
        loaders = getattr(combined, "flattened", [])
        if len(loaders) != 1 or getattr(loaders[0], "sampler", None) is None or \
                getattr(loaders[0].sampler, "batches", None) is not self.sampler:
            return  # several training loaders: Lightning's own totals stand
        batches = _limited(len(self.sampler), trainer.limit_train_batches)
        combined.limits = [batches]
        loop.max_batches = batches

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log `sampler.stats()` once an epoch through the trainer's logger (global rank 0)."""
        if trainer.logger is not None and trainer.is_global_zero:
            stats = {f"hardmine/{name}": value for name, value in self.sampler.stats().items()}
            trainer.logger.log_metrics(stats, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        """The memory's, the sampler's and the extra objects' states (empty before `dataloader` was called)."""
        if self._sampler is None:
            return {} if self._pending_state is None else self._pending_state
        return state_of(self._memory, self._sampler, self._extra)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore `state_dict()`; held until `dataloader` builds the sampler when it does not exist yet."""
        if not state_dict:
            return
        if self._sampler is None:
            self._pending_state = state_dict
        else:
            restore(self._memory, self._sampler, self._extra, state_dict)
