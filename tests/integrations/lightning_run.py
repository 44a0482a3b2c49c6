"""A tiny Lightning training run with HardMiningCallback that records every batch each step consumed.

Used by the single-process tests and, under `torch.distributed.run`, by the 2-process DDP test
(`python -m torch.distributed.run --nproc_per_node 2 lightning_run.py OUT_DIR`).
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from hardmine.integrations.lightning import HardMiningCallback
from hardmine.metric import CrossBatchMemory

N, FEATURES, CLASSES = 90, 6, 3


def data() -> TensorDataset:
    """N random samples with labels that a linear model can partly learn."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, FEATURES, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return TensorDataset(x, y)


class Model(pl.LightningModule):
    """Linear classifier; `seen` records the indices of every batch its training steps used; `bank` (a
    CrossBatchMemory checkpointed through the callback's extra_state) keeps the logits of recent batches."""

    def __init__(self, miner: HardMiningCallback, num_workers: int = 0, bank: CrossBatchMemory | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.layer = torch.nn.Linear(FEATURES, CLASSES)
        self.miner, self.num_workers, self.seen, self.bank = miner, num_workers, [], bank

    def train_dataloader(self):
        return self.miner.dataloader(data(), num_workers=self.num_workers)

    def training_step(self, batch, i):
        idx, x, y = batch
        self.seen.append(idx.tolist())
        logits = self.layer(x)
        if self.bank is not None:
            self.bank.enqueue(logits.detach(), y, step=self.global_step)
        return self.miner.loss(idx, F.cross_entropy(logits, y, reduction="none"))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def fit(root: str, policy: str = "importance", epochs: int = 3, ckpt_path: str | None = None, num_workers: int = 0,
        every_n_steps: int | None = None, devices: int = 1, strategy: str = "auto", logger=False, **trainer_kwargs):
    """Train; return (model, callback). Checkpoints at every `every_n_steps` steps and each epoch end go to root."""
    bank = CrossBatchMemory(size=20, embedding_dim=CLASSES)
    miner = HardMiningCallback(policy=policy, batch_size=8, seed=3, extra_state={"bank": bank})
    model = Model(miner, num_workers, bank)
    checkpoints = [pl.callbacks.ModelCheckpoint(dirpath=root, filename="epoch{epoch}", save_top_k=-1,
                                                save_on_train_epoch_end=True, auto_insert_metric_name=False)]
    if every_n_steps:
        checkpoints.append(pl.callbacks.ModelCheckpoint(dirpath=root, filename="step{step}", save_top_k=-1,
                                                        every_n_train_steps=every_n_steps,
                                                        auto_insert_metric_name=False))
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=devices, strategy=strategy,
                         callbacks=[miner, *checkpoints], logger=logger, enable_progress_bar=False,
                         enable_model_summary=False, deterministic=True, **trainer_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, ckpt_path=ckpt_path)
    return model, miner


def main(out: str) -> None:
    """The DDP runs: uninterrupted, resumed from a mid-epoch and an end-of-epoch checkpoint; 2 uniform epochs."""
    rank = int(os.environ.get("RANK", "0"))
    result = {}
    logger = pl.loggers.CSVLogger(os.path.join(out, "logs"), name="full", version=0)  # logs sampler.stats()
    full, miner = fit(out, strategy="ddp", devices=2, every_n_steps=4, logger=logger)
    result["full"] = {"seen": full.seen, "score": miner.memory.get("score").tolist(),
                      "bank": full.bank.embeddings.tolist(),
                      "world_size": miner.sampler.state_dict()["world_size"]}
    for name in ("step4.ckpt", "epoch0.ckpt"):
        resumed, miner = fit(os.path.join(out, "again"), strategy="ddp", devices=2,
                             ckpt_path=os.path.join(out, name))
        result[name] = {"seen": resumed.seen, "score": miner.memory.get("score").tolist(),
                        "bank": resumed.bank.embeddings.tolist()}
    logger = pl.loggers.CSVLogger(os.path.join(out, "logs"), name="uniform", version=0)
    uniform, miner = fit(os.path.join(out, "uniform"), policy="uniform", epochs=2, strategy="ddp", devices=2,
                         logger=logger)
    result["uniform"] = {"seen": uniform.seen, "updates": miner.memory.updates, "len": len(miner.sampler)}
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1])
