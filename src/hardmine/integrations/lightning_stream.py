"""HardStreamCallback: a `hm.HardStream` in a Lightning (pytorch_lightning 2.x) Trainer, with one call in the step.

```python
miner = HardStreamCallback(hm.HardStream(samples, batch_size=32, candidates=4, policy="online_top_loss"))
def train_dataloader(self): return miner.dataloader()
def training_step(self, batch, i):
    ids, (x, y) = batch
    return miner.loss(ids, F.cross_entropy(self(x), y, reduction="none"))
trainer = L.Trainer(callbacks=[miner], max_steps=..., ...)
```
Install with the `lightning` extra (`pip install hardmine[lightning]`).
"""

from __future__ import annotations

import weakref
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

import hardmine as hm


class _EpochLoader(DataLoader):
    """The stream's DataLoader: an iteration (one a Lightning epoch) moves the stream up to the Trainer's current
    epoch, never back (Lightning makes a resumed run's first iterator before it restores its epoch count)."""

    def __init__(self, stream: hm.HardStream, epoch_of: Any, **kwargs: Any) -> None:
        super().__init__(stream, batch_size=None, num_workers=stream.num_workers, **kwargs)
        self._epoch_of = epoch_of

    def __iter__(self) -> Any:
        epoch = self._epoch_of()
        if epoch is not None and epoch > self.dataset.epoch:
            self.dataset.set_epoch(epoch)
        return super().__iter__()


class HardStreamCallback(pl.Callback):
    """Owns a HardStream in a Lightning run: its loader, its epochs and its checkpointed state.

    `loss(ids, per_sample_loss)` is `update` + the policy's weights + `hm.reduce(..., normalize="weighted")`: the
    mean over the samples the policy keeps, back-propagating the whole candidate batch (simple, no compute saved).
    To save the dropped candidates' backward pass, score without gradient in the step and train on
    `stream.select(ids, batch)` instead (docs/streams.md). The stream's epoch follows the Trainer's; the
    stream's state (position, policy, replay) is saved in Lightning's checkpoints and restored from them, so
    `fit(ckpt_path=...)` resumes mid-epoch where the checkpoint was taken.
    """

    def __init__(self, stream: hm.HardStream) -> None:
        if not isinstance(stream, hm.HardStream):
            raise TypeError(f"stream must be a hm.HardStream, got {type(stream).__name__}")
        self.stream = stream
        self._trainer: Any = None

    def dataloader(self, **kwargs: Any) -> DataLoader:
        """`DataLoader(stream, batch_size=None, num_workers=stream.num_workers, **kwargs)`, which starts each
        iteration at the Trainer's current epoch."""
        return _EpochLoader(self.stream, self._current_epoch, **kwargs)

    def _current_epoch(self) -> int | None:
        trainer = None if self._trainer is None else self._trainer()
        return None if trainer is None else trainer.current_epoch

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Remember the Trainer (weakly), whose epoch the loader follows."""
        self._trainer = weakref.ref(trainer)

    def loss(self, ids: Any, per_sample_loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate from the per-sample loss [C] (with gradient) of candidate batch `ids`."""
        self.stream.update(ids, per_sample_loss.detach())
        weights = self.stream.weights(ids).to(per_sample_loss.device)
        return hm.reduce(per_sample_loss, weights, normalize="weighted")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The stream moves to the next epoch, before Lightning's epoch-end checkpoints (which run after the other
        callbacks) save it: a run resumed from one starts the next epoch."""
        self.stream.set_epoch(trainer.current_epoch + 1)

    def state_dict(self) -> dict[str, Any]:
        """The stream's state."""
        return {"stream": self.stream.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the stream's state (refused, naming the difference, when it is another stream's)."""
        self.stream.load_state_dict(state_dict["stream"])
