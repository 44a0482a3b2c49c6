"""HardStreamCallback: a HardStream in a Lightning Trainer (2 DataLoader workers) resumes from a mid-epoch and an
epoch-end checkpoint with the uninterrupted run's candidate batches, over two epochs."""

import warnings

import pytest
import torch
import torch.nn.functional as F

import hardmine as hm

pytest.importorskip("pytorch_lightning")

import pytorch_lightning as pl

from hardmine.integrations.lightning_stream import HardStreamCallback

N, FEATURES, CLASSES = 75, 6, 3


def samples(epoch):
    g = torch.Generator().manual_seed(epoch)
    x = torch.randn(N, FEATURES, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 1).long()
    return [(x[i], y[i]) for i in range(N)]


class Model(pl.LightningModule):
    def __init__(self, miner):
        super().__init__()
        torch.manual_seed(0)
        self.layer, self.miner, self.seen = torch.nn.Linear(FEATURES, CLASSES), miner, []

    def train_dataloader(self):
        return self.miner.dataloader()

    def training_step(self, batch, i):
        ids, (x, y) = batch
        self.seen.append(ids.tolist())
        return self.miner.loss(ids, F.cross_entropy(self.layer(x), y, reduction="none"))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def fit(root, ckpt_path=None):
    stream = hm.HardStream(samples, batch_size=4, candidates=2, policy="online_top_loss", num_workers=2,
                           replay=hm.streams.HardReplay(capacity=6, fraction=0.25))
    miner = HardStreamCallback(stream)
    model = Model(miner)
    checkpoints = [pl.callbacks.ModelCheckpoint(dirpath=root, filename="step{step}", save_top_k=-1,
                                                every_n_train_steps=5, auto_insert_metric_name=False),
                   pl.callbacks.ModelCheckpoint(dirpath=root, filename="epoch{epoch}", save_top_k=-1,
                                                save_on_train_epoch_end=True, auto_insert_metric_name=False)]
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", callbacks=[miner, *checkpoints], logger=False,
                         enable_progress_bar=False, enable_model_summary=False, deterministic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, ckpt_path=ckpt_path)
    return model, stream


def test_resume_gives_the_uninterrupted_candidate_batches(tmp_path):
    full, stream = fit(str(tmp_path / "full"))
    per_epoch = 10  # two shards (37 and 38 samples) of 8-sample candidate batches: 5 each
    assert len(full.seen) == 2 * per_epoch
    assert stream.epoch == 2  # moved on at the end of epoch 1
    assert stream.stats()["keep_ratio"] == pytest.approx(0.5, abs=0.02)
    for name, step in (("step5", 5), ("epoch0", per_epoch)):  # mid-epoch (worker 1's batch next), epoch end
        resumed, again = fit(str(tmp_path / name), ckpt_path=str(tmp_path / "full" / f"{name}.ckpt"))
        assert resumed.seen == full.seen[step:], name
        assert torch.equal(again.state_dict()["selection"]["replay"]["ids"],
                           stream.state_dict()["selection"]["replay"]["ids"])
