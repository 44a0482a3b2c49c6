"""HardMiningTrainer: a Hugging Face `Trainer` (transformers 5.x, accelerate 1.x) that draws batches by difficulty.

```python
trainer = HardMiningTrainer(model=model, args=TrainingArguments(...), train_dataset=train_set,
                            hardmine_policy="importance")
trainer.train()
```
Install with the `transformers` extra (`pip install hardmine[transformers]`).
"""

from __future__ import annotations

import inspect
import math
import os
import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
import torch
from accelerate.data_loader import BatchSamplerShard, DataLoaderDispatcher
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, seed_worker

import hardmine as hm
from hardmine.inbatch.losses import per_sample_cross_entropy
from hardmine.integrations._state import check_extra, load_from_checkpoint, restore, state_of
from hardmine.integrations._step import by_progress, mined_loss
from hardmine.integrations.llm_trainer import TokenSelection
from hardmine.sampling.policies import POLICIES

INDEX_COLUMN = "hardmine_index"
STATE_FILE = "hardmine.pt"


def cross_entropy_per_sample(outputs: Any, labels: torch.Tensor) -> torch.Tensor:
    """The default `per_sample_loss`: cross-entropy [B] of `outputs.logits` [B, C] against `labels` [B]."""
    return per_sample_cross_entropy(outputs.logits.float(), labels)


class _IndexedItems(Dataset):
    """Item i of a data set of dicts, with the key `hardmine_index` = i added."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.dataset[i]
        if not isinstance(item, Mapping):
            raise TypeError(f"train_dataset items must be dicts (as the Trainer's collators expect), got "
                            f"{type(item).__name__}")
        return {**item, INDEX_COLUMN: i}


def leave_sharded(loader: Any, sampler: hm.HardExampleSampler) -> Any:
    """Make the DataLoader `accelerator.prepare` returned yield `sampler`'s batches unchanged.

    The sampler's batches are already this process's share, so accelerate's BatchSamplerShard must neither
    re-shard them (which drops half the data on 2 processes), split them, nor pad the last one: it becomes a
    pass-through. Dispatching batches from rank 0 (`dispatch_batches=True`) cannot work with a rank-aware sampler
    and is refused.
    """
    if isinstance(loader, DataLoaderDispatcher):
        raise ValueError("accelerate dispatches batches from rank 0 (dispatch_batches=True), but the hardmine "
                         "sampler is rank-aware: pass TrainingArguments(accelerator_config={'dispatch_batches': "
                         "False})")
    shard = getattr(loader, "batch_sampler", None)
    if isinstance(shard, BatchSamplerShard):
        if shard.batch_sampler is not sampler:
            raise ValueError(f"the prepared DataLoader shards {type(shard.batch_sampler).__name__}, not the "
                             "hardmine sampler")
        shard.num_processes, shard.process_index, shard.split_batches, shard.batch_size = 1, 0, False, None
    elif getattr(loader, "batch_sampler", None) is not sampler:
        raise ValueError(f"the prepared DataLoader draws from {type(shard).__name__}, not the hardmine sampler")
    return loader


class _EpochFromSampler(TrainerCallback):
    """After each optimiser step, the Trainer's fractional epoch (what `log` records) is the sampler's: its epoch
    plus the part of it consumed. The Trainer's own counts steps of a fixed epoch length from where its loop
    started, which a policy that changes epoch lengths, or a resume inside an epoch, would make go backwards."""

    def __init__(self, sampler: hm.HardExampleSampler) -> None:
        self.sampler = sampler

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        sampler = self.sampler
        state.epoch = sampler.epoch + sampler.position / max(len(sampler), 1)
        return control


class HardMiningTrainer(TokenSelection, Trainer):
    """A `transformers.Trainer` whose training batches come from a HardExampleSampler over a ScoreMemory.

    hardmine_policy: a registered policy name or a Policy object. The default, "importance", draws hard samples
        more often with unbiased weights (normalize="none"), so the step size stays the one the optimiser was
        given; measured within noise of uniform on clean data (docs/benchmarks.md): check yours with
        `hardmine compare`, and prefer "class_balanced" on long-tailed classes.
    hardmine_batch_size: B per device; defaults to `args.per_device_train_batch_size`.
    per_sample_loss: `(outputs, labels) -> Tensor[B]` with gradient; the default is the cross-entropy of
        `outputs.logits` [B, C] (sequence classification). Labels are taken from the batch (`args.label_names`,
        "labels" by default) and not passed to the model.
    hardmine_seed: the sampler's seed; defaults to `args.data_seed` or `args.seed`.
    hardmine_labels: class ids [N] of the training samples, for class_balanced or a class_balance guard; by
        default read from the data set's label column when it holds one integer per sample.
    hardmine_extra_state: name -> object with `state_dict`/`load_state_dict` (a CrossBatchMemory, a
        NegativePool) saved in `hardmine.pt` with the sampler and restored with it.
    hardmine_tokens, hardmine_reference: token selection for causal LMs (`hm.llm.TokenSelector`, a reference
        model or TokenLossStore); see `hardmine.integrations.llm_trainer.TokenSelection` and docs/llm.md.

    It adds the index column itself (kept through `remove_unused_columns`), tells accelerate the batches are
    already sharded (no re-sharding, no dropped or padded data; `dispatch_batches` must be False), saves and
    restores sampler and memory (`hardmine.pt`, weights_only-loadable) in the Trainer's checkpoints. When the
    policy changes epoch lengths (prune_easy, curricula; gradient accumulation is refused then), an epoch-based
    run drives the learning-rate schedule by the fraction of the configured epochs done, so it ends with the
    run; a `max_steps` run goes on until `max_steps`, over as many epochs as that takes. The logged epoch is the
    sampler's (its epoch plus the part consumed: it never goes backwards), and each training log (`logging_steps`)
    carries `sampler.stats()` as `hardmine/<name>` (this rank's, see `HardExampleSampler.stats`), so they reach
    `state.log_history` and the `report_to` integrations. Exposes `.hardmine_memory` and `.hardmine_sampler`.
    """

    def __init__(self, *args: Any, hardmine_policy: str | hm.Policy = "importance",
                 hardmine_batch_size: int | None = None,
                 per_sample_loss: Callable[[Any, torch.Tensor], torch.Tensor] = cross_entropy_per_sample,
                 hardmine_seed: int | None = None, hardmine_extra_state: Any = None, hardmine_labels: Any = None,
                 **kwargs: Any) -> None:
        train = kwargs.get("train_dataset", args[3] if len(args) > 3 else None)
        if train is None or isinstance(train, torch.utils.data.IterableDataset) or not hasattr(train, "__len__"):
            raise TypeError(f"train_dataset must be a map-style data set with __len__ (hardmine keeps a score per "
                            f"sample), got {type(train).__name__}")
        if not callable(per_sample_loss):
            raise TypeError(f"per_sample_loss must be callable (outputs, labels) -> Tensor[B], got "
                            f"{type(per_sample_loss).__name__}")
        super().__init__(*args, **kwargs)
        policy = self._hardmine_policy(hardmine_policy)
        self._hardmine_extra = check_extra(hardmine_extra_state or {})
        varies = isinstance(policy, hm.SubsetPolicy) and not isinstance(policy, hm.UniformPolicy)
        self._hardmine_varies = varies
        if varies and self.args.gradient_accumulation_steps > 1:
            raise ValueError(f"hardmine_policy {policy.name!r} changes epoch lengths, which the Trainer's gradient "
                             f"accumulation (gradient_accumulation_steps={self.args.gradient_accumulation_steps}) "
                             "cannot follow (the last batches of a shortened epoch would not be stepped): use "
                             "gradient_accumulation_steps=1 or a priority policy (importance, rank)")
        train = self.train_dataset
        seed = hardmine_seed if hardmine_seed is not None else (
            self.args.data_seed if self.args.data_seed is not None else self.args.seed)
        batch_size = hardmine_batch_size if hardmine_batch_size is not None else \
            self.args.per_device_train_batch_size
        self.hardmine_memory = hm.ScoreMemory(len(train), labels=self._hardmine_labels(train, hardmine_labels))
        self.hardmine_sampler = hm.HardExampleSampler(self.hardmine_memory, batch_size, policy=policy, seed=seed,
                                                      drop_last=self.args.dataloader_drop_last)
        self.per_sample_loss = per_sample_loss
        self.model_accepts_loss_kwargs = False  # the loss is a mean: the Trainer divides it by accumulation steps
        self._hardmine_label = (self.args.label_names or ["labels"])[0]
        self._hardmine_resumed = self._hardmine_rng_after_iter = False
        self._hardmine_rng_pending: str | None = None
        self.add_callback(_EpochFromSampler(self.hardmine_sampler))

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """The Trainer's, with the sampler's stats (`hardmine/<name>`) added to each training-loss log."""
        if "loss" in logs:
            logs = {**logs, **{f"hardmine/{name}": value for name, value in self.hardmine_sampler.stats().items()}}
        super().log(logs, *args, **kwargs)

    def _hardmine_labels(self, train: Any, labels: Any) -> Any:
        """The class labels [N] the memory keeps: `labels` when given, else the data set's label column
        (`args.label_names[0]`, "labels" by default) when it has one with one integer per sample, else None."""
        if labels is not None:
            if len(labels) != len(train):
                raise ValueError(f"hardmine_labels must hold one class id per training sample ({len(train)}), got "
                                 f"{len(labels)}")
            return labels
        column = (self.args.label_names or ["labels"])[0]
        names = getattr(train, "column_names", None)
        if not names or column not in names:
            return None
        values = np.asarray(train[column])
        return values if values.ndim == 1 and values.dtype.kind in "iu" else None

    def _hardmine_policy(self, policy: str | hm.Policy) -> hm.Policy:
        """The policy; a named one that anneals over the run's epochs (prune_easy) gets `num_train_epochs`."""
        if isinstance(policy, str) and policy in POLICIES and self.args.max_steps <= 0 and \
                "epochs" in inspect.signature(POLICIES[policy].__init__).parameters:
            return hm.build_policy(policy, epochs=math.ceil(self.args.num_train_epochs))
        return hm.build_policy(policy)

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if INDEX_COLUMN not in self._signature_columns:
            self._signature_columns.append(INDEX_COLUMN)

    def _indexed_train_dataset(self) -> Any:
        train = self.train_dataset
        try:
            import datasets
        except ImportError:
            datasets = None
        if datasets is not None and isinstance(train, datasets.Dataset):
            if INDEX_COLUMN in train.column_names:
                raise ValueError(f"train_dataset already has a column {INDEX_COLUMN!r}; rename it")
            return train.add_column(INDEX_COLUMN, list(range(len(train))))
        return _IndexedItems(train)

    def get_train_dataloader(self) -> DataLoader:
        """The training DataLoader: the sampler's batches of the indexed data set, prepared by accelerate."""
        dataset, collator = self._indexed_train_dataset(), self.data_collator
        if isinstance(dataset, _IndexedItems):
            collator = self._get_collator_with_removed_columns(collator, description="training")
        else:
            dataset = self._remove_unused_columns(dataset, description="training")
        workers = self.args.dataloader_num_workers
        params = {"collate_fn": collator, "num_workers": workers, "pin_memory": self.args.dataloader_pin_memory,
                  "worker_init_fn": partial(seed_worker, num_workers=workers, rank=self.args.process_index)}
        if workers > 0:
            params.update(persistent_workers=self.args.dataloader_persistent_workers,
                          prefetch_factor=self.args.dataloader_prefetch_factor)
        loader = DataLoader(dataset, batch_sampler=self.hardmine_sampler, **params)
        return leave_sharded(self.accelerator.prepare(loader), self.hardmine_sampler)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """Training batches: the mined loss (update, importance weights, reduce); others: the Trainer's own."""
        if INDEX_COLUMN not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs = dict(inputs)
        index = inputs.pop(INDEX_COLUMN)
        if self._hardmine_label not in inputs:
            raise KeyError(f"the training batch has no {self._hardmine_label!r}: per_sample_loss needs the labels "
                           "(set TrainingArguments.label_names)")
        labels = inputs.pop(self._hardmine_label)
        outputs = model(**inputs)
        if self.hardmine_tokens is not None:  # causal LMs: token selection (integrations/llm_trainer.py)
            loss = self._hardmine_token_loss(index, inputs, labels, outputs)
        else:
            loss = mined_loss(self.hardmine_sampler, index, self.per_sample_loss(outputs, labels))
        return (loss, outputs) if return_outputs else loss

    def set_initial_training_values(self, args: Any, dataloader: DataLoader) -> tuple:
        """As the Trainer's; when a policy changes epoch lengths, a `max_steps` run is not cut short, and an
        epoch-based run counts full epochs (as a fresh run does, also when resumed inside a shortened one)."""
        values = list(super().set_initial_training_values(args, dataloader))
        if not self._hardmine_varies:
            return tuple(values)
        if args.max_steps > 0:
            values[0] = sys.maxsize  # num_train_epochs: the Trainer stops at max_steps
        else:  # gradient_accumulation_steps is 1 here
            full = self.hardmine_sampler.batches_for(self.hardmine_memory.num_samples)
            values[1] = values[5] = full  # update steps per epoch, batches per epoch
            values[6] = math.ceil(args.num_train_epochs * full)  # max_steps
        return tuple(values)

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        """The Trainer's schedule; in an epoch-based run with a policy that changes epoch lengths, evaluated at the
        fraction of the configured epochs done (so it ends with the run)."""
        created = self.lr_scheduler is None
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        if self.args.max_steps > 0 or not created or not self._hardmine_varies:
            return scheduler
        if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
            raise TypeError(f"lr_scheduler_type {self.args.lr_scheduler_type!r} is not a step function "
                            "(LambdaLR); with epochs of varying length use max_steps or a LambdaLR schedule")
        epochs, sampler = math.ceil(self.args.num_train_epochs), self.hardmine_sampler

        def progress() -> float:
            return (sampler.epoch + sampler.position / len(sampler)) / epochs

        scheduler.lr_lambdas = [by_progress(f, progress, num_training_steps) for f in scheduler.lr_lambdas]
        return scheduler

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial),
                                  f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            state = state_of(self.hardmine_memory, self.hardmine_sampler, self._hardmine_extra)
            hm.save_state(state, os.path.join(folder, STATE_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        state = load_from_checkpoint(resume_from_checkpoint, STATE_FILE, "HardMiningTrainer")
        restore(self.hardmine_memory, self.hardmine_sampler, self._hardmine_extra, state)
        self._hardmine_resumed = True

    def _init_training_state(self, *args: Any, **kwargs: Any) -> tuple[int, int]:
        """On resume, continue at the sampler's epoch, without skipping batches (the sampler resumes itself)."""
        epochs_trained, steps = super()._init_training_state(*args, **kwargs)
        if not self._hardmine_resumed:
            return epochs_trained, steps
        sampler = self.hardmine_sampler
        self._hardmine_rng_after_iter = 0 < sampler.position < len(sampler)
        return sampler.epoch + int(sampler.position >= len(sampler)), 0

    def _load_rng_state(self, checkpoint: str | None) -> None:
        """Mid-epoch, the saved random state is that of the step after the epoch's iterator was made, so it is
        loaded after the resumed iterator is made (as the Trainer does when it skips batches itself)."""
        if self._hardmine_rng_after_iter:
            self._hardmine_rng_pending = checkpoint
            return
        super()._load_rng_state(checkpoint)

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> tuple:
        """The Trainer's, then the random state a mid-epoch resume deferred."""
        batches = super().get_batch_samples(epoch_iterator, num_batches, device)
        if self._hardmine_rng_pending is not None:
            checkpoint, self._hardmine_rng_pending, self._hardmine_rng_after_iter = \
                self._hardmine_rng_pending, None, False
            super()._load_rng_state(checkpoint)
        return batches
