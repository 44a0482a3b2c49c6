"""HardStreamTrainer: a Hugging Face `Trainer` whose training set is a `hm.HardStream` (an IterableDataset: the run
is bounded by `max_steps`).

```python
stream = hm.HardStream(train_stream, batch_size=8, candidates=4, policy="online_top_loss")
trainer = HardStreamTrainer(model=model, args=TrainingArguments(..., max_steps=1000), train_dataset=stream)
trainer.train()
```
Install with the `transformers` extra (`pip install hardmine[transformers]`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader
from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

import hardmine as hm
from hardmine.integrations._state import load_from_checkpoint
from hardmine.integrations.transformers import cross_entropy_per_sample

IDS = "hardmine_stream_ids"
STATE_FILE = "hardmine_stream.pt"


def _as_inputs(item: tuple[torch.Tensor, Any]) -> dict[str, Any]:
    """A stream's (ids, batch) as the Trainer's inputs: the batch's columns and the ids."""
    ids, batch = item
    if not isinstance(batch, Mapping):
        raise TypeError(f"HardStreamTrainer needs samples that are dicts of columns (a datasets row), got a batch "
                        f"of type {type(batch).__name__}")
    return {**batch, IDS: ids}


class _StreamLoader(DataLoader):
    """The stream's candidate batches as Trainer inputs. The Trainer calls `set_epoch` at each of its epochs: the
    first call keeps the stream's epoch (a resumed stream continues where its state stopped), each later one
    starts the stream's next epoch."""

    def __init__(self, stream: hm.HardStream, pin_memory: bool) -> None:
        super().__init__(stream, batch_size=None, collate_fn=_as_inputs, num_workers=stream.num_workers,
                         pin_memory=pin_memory)
        self._started = False

    def set_epoch(self, epoch: int) -> None:
        """See the class."""
        if self._started:
            self.dataset.set_epoch(self.dataset.epoch + 1)
        self._started = True


class HardStreamTrainer(Trainer):
    """A `transformers.Trainer` whose `train_dataset` is a HardStream over dict samples (a `datasets`
    IterableDataset's rows); `args.max_steps` bounds the run.

    Each training step scores the candidate batch without gradient, `update`s the stream, and forwards and
    back-propagates what `select` keeps (the uniform policy: one forward with gradient); the loss is
    `hm.reduce(per_sample_loss, stream.weights(ids))`. The stream's state (position, policy, replay buffer) is
    saved in each checkpoint (`hardmine_stream.pt`, weights_only-loadable) and restored on resume, which then
    skips no batches (the stream resumes itself). Not with accelerate's `dispatch_batches`: under
    torch.distributed each rank's stream reads its own shards.

    per_sample_loss: `(outputs, labels) -> Tensor[B]`; default: cross-entropy of `outputs.logits`. Labels are
        taken from the batch (`args.label_names`, "labels" by default) and not passed to the model.
    """

    def __init__(self, *args: Any, per_sample_loss: Callable[[Any, torch.Tensor], torch.Tensor] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.train_dataset, hm.HardStream):
            raise TypeError(f"train_dataset must be a hm.HardStream, got {type(self.train_dataset).__name__}")
        if self.args.max_steps <= 0:
            raise ValueError(f"a HardStream has no length: set TrainingArguments(max_steps=...), got "
                             f"max_steps={self.args.max_steps}")
        self.hardmine_stream: hm.HardStream = self.train_dataset
        self.per_sample_loss = per_sample_loss or cross_entropy_per_sample
        self._hardmine_label = (self.args.label_names or ["labels"])[0]

    def get_train_dataloader(self) -> DataLoader:
        """The stream's batches (not re-sharded by accelerate: each rank's stream reads its own shards)."""
        return _StreamLoader(self.hardmine_stream, self.args.dataloader_pin_memory)

    def get_resumed_dataloader(self, train_dataloader: Any, steps: int) -> Any:
        """On resume, the loader as it is: the stream's loaded state already starts after the consumed batches."""
        return train_dataloader

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """Training batches: score, select, then the loss of the kept samples; others: the Trainer's own."""
        if IDS not in inputs:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        inputs, stream, label = dict(inputs), self.hardmine_stream, self._hardmine_label
        ids = inputs.pop(IDS)
        if label not in inputs:
            raise KeyError(f"the training batch has no {label!r}: per_sample_loss needs the labels (set "
                           "TrainingArguments.label_names)")
        if isinstance(stream.policy, hm.UniformPolicy):  # keeps everything: one forward
            labels = inputs.pop(label)
            outputs = model(**inputs)
            per_sample = self.per_sample_loss(outputs, labels)
            stream.update(ids, per_sample.detach())
        else:
            with torch.no_grad():
                scores = self.per_sample_loss(model(**{k: v for k, v in inputs.items() if k != label}),
                                              inputs[label])
            stream.update(ids, scores)
            ids, inputs = stream.select(ids, inputs)
            labels = inputs.pop(label)
            outputs = model(**inputs)
            per_sample = self.per_sample_loss(outputs, labels)
        loss = hm.reduce(per_sample, stream.weights(ids).to(per_sample.device))
        return (loss, outputs) if return_outputs else loss

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial),
                                  f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            hm.save_state(self.hardmine_stream.state_dict(), os.path.join(folder, STATE_FILE))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self.hardmine_stream.load_state_dict(load_from_checkpoint(resume_from_checkpoint, STATE_FILE,
                                                                  "HardStreamTrainer"))
