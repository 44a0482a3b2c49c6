"""HardMiningCallback in a Lightning Trainer: resume gives the uninterrupted batches and memory, single process
and 2-process DDP (gloo, default use_distributed_sampler), epochs stay in step, checkpoints load weights_only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_lightning")

from hardmine.integrations.lightning import HardMiningCallback
from tests.integrations import lightning_run as run

PER_EPOCH = -(-run.N // 8)  # 12 batches of 8 (the last one of 2)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_mid_epoch_and_epoch_end_checkpoints(tmp_path, workers):
    full, miner = run.fit(str(tmp_path / "full"), num_workers=workers, every_n_steps=5)
    assert len(full.seen) == 3 * PER_EPOCH
    checkpoint = torch.load(tmp_path / "full" / "step5.ckpt", weights_only=True)
    assert checkpoint["callbacks"]["HardMiningCallback"]["sampler"]["position"] == 5
    for name, done in (("step5.ckpt", 5), ("epoch0.ckpt", PER_EPOCH)):
        resumed, miner2 = run.fit(str(tmp_path / name), num_workers=workers,
                                  ckpt_path=str(tmp_path / "full" / name))
        assert resumed.seen == full.seen[done:], name
        np.testing.assert_array_equal(miner2.memory.get("score"), miner.memory.get("score"))
        np.testing.assert_array_equal(miner2.memory.get("seen"), miner.memory.get("seen"))
        resumed_bank = resumed.bank.state_dict()
        for key, value in full.bank.state_dict().items():  # the CrossBatchMemory in extra_state resumes too
            same = torch.equal(resumed_bank[key], value) if isinstance(value, torch.Tensor) else \
                resumed_bank[key] == value
            assert same, key


def test_epochs_stay_in_step_under_limit_train_batches(tmp_path):
    model, miner = run.fit(str(tmp_path), epochs=3, limit_train_batches=4, policy="uniform")
    assert len(model.seen) == 12 and miner.sampler.epoch == 2
    first = run.fit(str(tmp_path / "x"), epochs=1, policy="uniform")[0].seen  # epoch 0 of the same seed
    assert model.seen[:4] == first[:4] and model.seen[4:8] != first[4:8]


def test_ddp_two_processes_with_the_default_distributed_sampler_and_a_logger(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(_free_port()), str(Path(run.__file__)), str(tmp_path)], env=env, timeout=300,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    full = [r["full"] for r in ranks]
    assert full[0]["world_size"] == 2
    per_epoch = -(-run.N // 16)
    assert len(full[0]["seen"]) == len(full[1]["seen"]) == 3 * per_epoch
    visits = np.zeros(run.N, dtype=int)
    for r in ranks:
        assert len(r["uniform"]["seen"]) == 2 * per_epoch and r["uniform"]["len"] == per_epoch
        for batch in r["uniform"]["seen"]:
            np.add.at(visits, batch, 1)
    np.testing.assert_array_equal(visits, np.full(run.N, 2))  # 2 epochs: every sample twice, across both ranks
    assert full[0]["score"] == full[1]["score"]
    for name, done in (("step4.ckpt", 4), ("epoch0.ckpt", per_epoch)):
        for r in (0, 1):
            assert ranks[r][name]["seen"] == full[r]["seen"][done:], (name, r)
            assert ranks[r][name]["score"] == full[r]["score"]
            assert ranks[r][name]["bank"] == full[r]["bank"] == full[0]["bank"]  # gathered: every rank the same
    for name, epochs in (("full", 3), ("uniform", 2)):  # a CSVLogger got sampler.stats() at each epoch end
        lines = (tmp_path / "logs" / name / "version_0" / "metrics.csv").read_text().splitlines()
        column = lines[0].split(",").index("hardmine/epoch")
        logged = [float(line.split(",")[column]) for line in lines[1:] if line.split(",")[column]]
        assert logged == [float(e) for e in range(epochs)], name


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_errors_name_what_to_do(tmp_path):
    miner = HardMiningCallback(batch_size=4)
    with pytest.raises(RuntimeError, match="miner.dataloader"):
        _ = miner.sampler
    with pytest.raises(ValueError, match="batch_size"):
        miner.dataloader(run.data(), batch_size=3)
    with pytest.raises(TypeError, match="map-style"):
        miner.dataloader(iter(range(3)))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        HardMiningCallback(batch_size=0)
    with pytest.raises(TypeError, match=r"extra_state\['bank'\] must have state_dict"):
        HardMiningCallback(extra_state={"bank": 3})


def test_a_loader_not_built_by_the_callback_is_refused(tmp_path):
    import pytorch_lightning as pl

    class Plain(run.Model):
        def train_dataloader(self):
            return torch.utils.data.DataLoader(run.data(), batch_size=8)

    miner = HardMiningCallback(batch_size=8)
    trainer = pl.Trainer(max_epochs=1, callbacks=[miner], logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)
    with pytest.raises(RuntimeError, match="miner.dataloader"):
        trainer.fit(Plain(miner))


def test_stats_are_logged_once_an_epoch(tmp_path):
    import pytorch_lightning as pl

    class Logger(pl.loggers.logger.Logger):
        name, version, experiment = "test", 0, None
        logged = []

        def log_metrics(self, metrics, step=None):
            self.logged.append(metrics)

        def log_hyperparams(self, *args, **kwargs):
            pass

    miner = HardMiningCallback(batch_size=8)
    trainer = pl.Trainer(max_epochs=2, callbacks=[miner], logger=Logger(), enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False)
    trainer.fit(run.Model(miner))
    epochs = [m for m in Logger.logged if "hardmine/epoch" in m]
    assert [m["hardmine/epoch"] for m in epochs] == [0.0, 1.0] and 0.5 < epochs[-1]["hardmine/fraction_seen"] <= 1.0


class _Scheduled(run.Model):
    """A warm memory (scored before training, so prune_easy prunes from epoch 0 on) and a LinearLR to 0 over
    `trainer.estimated_stepping_batches` (or `schedule(optimizer, total)`), stepped every batch; records each
    epoch's (num_training_batches, steps), the learning rate each step applied and the one after training."""

    def __init__(self, miner, schedule=None):
        super().__init__(miner)
        self.epochs, self.final_lr, self.lrs, self.schedule = [], None, [], schedule

    def train_dataloader(self):
        loader = self.miner.dataloader(run.data())
        if self.miner.memory.updates == 0:
            self.miner.memory.update(np.arange(run.N), np.abs(np.cos(np.arange(run.N))))
        return loader

    def on_train_epoch_start(self):
        self.epochs.append([self.trainer.num_training_batches, 0])

    def on_train_batch_start(self, *args):
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, *args):
        self.epochs[-1][1] += 1

    def on_train_end(self):
        self.final_lr = self.trainer.optimizers[0].param_groups[0]["lr"]

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(self.parameters(), lr=0.5)
        total = self.trainer.estimated_stepping_batches
        schedule = (self.schedule or _linear)(optimizer, total)
        return [optimizer], [{"scheduler": schedule, "interval": "step"}]


def _linear(optimizer, total):
    return torch.optim.lr_scheduler.LinearLR(optimizer, 1.0, 0.0, total_iters=total)


def _fit_scheduled(policy, schedule=None, **trainer_kwargs):
    import pytorch_lightning as pl

    import hardmine as hm

    miner = HardMiningCallback(policy=hm.build_policy(policy, ratio=0.5, epochs=10), batch_size=8, seed=3)
    model = _Scheduled(miner, schedule)
    trainer = pl.Trainer(accelerator="cpu", callbacks=[miner], logger=False, enable_progress_bar=False,
                         enable_checkpointing=False, enable_model_summary=False, **trainer_kwargs)
    trainer.fit(model)
    return model, trainer


def test_prune_easy_epoch_lengths_and_a_linear_lr_that_ends_at_zero():
    model, trainer = _fit_scheduled("prune_easy", max_epochs=1)
    (total, steps), = model.epochs
    assert steps < PER_EPOCH  # pruned
    assert total == steps == trainer.estimated_stepping_batches == trainer.global_step
    assert model.final_lr == 0.0
    model, trainer = _fit_scheduled("prune_easy", max_epochs=3)  # each epoch decides its own length
    assert all(total == steps for total, steps in model.epochs), model.epochs
    assert len({steps for _, steps in model.epochs}) > 1
    assert trainer.global_step == sum(steps for _, steps in model.epochs)
    model, trainer = _fit_scheduled("prune_easy", max_epochs=-1, max_steps=30)  # bounded by steps: exact
    assert trainer.global_step == 30 and model.final_lr == 0.0


def _lambda(optimizer, total):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total) ** 2)


@pytest.mark.parametrize("schedule", [_linear, _lambda], ids=["LinearLR", "LambdaLR"])
def test_a_step_schedule_sized_by_estimated_stepping_batches_ends_with_a_pruned_run(schedule):
    """prune_easy over 3 epochs takes fewer steps than estimated_stepping_batches (first epoch x 3): the schedule
    follows the run's progress and reaches 0 at its last step, decreasing all the way."""
    model, trainer = _fit_scheduled("prune_easy", schedule, max_epochs=3)
    assert trainer.global_step != model.epochs[0][0] * 3  # not what estimated_stepping_batches told
    lrs = [*model.lrs, model.final_lr]  # the lr each step applied, and the one after the last step
    assert len(lrs) == trainer.global_step + 1 and lrs[0] == 0.5
    assert abs(model.final_lr) <= 1e-12, lrs
    assert all(b <= a for a, b in zip(lrs, lrs[1:])), lrs
    assert all(b < a for a, b in zip(lrs[:-1], lrs[1:-1])), lrs  # strictly: no step repeats its lr


def test_horizon_schedules_follow_the_progress_and_count_schedules_are_named():
    """CosineAnnealingLR ends at eta_min, OneCycleLR at its total_steps (no "Tried to step" error when a run
    takes more steps than estimated); a StepLR keeps counting steps, with a warning that names it."""
    sched = torch.optim.lr_scheduler
    made = []

    def cosine(optimizer, total):
        made.append(sched.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.0))
        return made[-1]

    def one_cycle(optimizer, total):
        made.append(sched.OneCycleLR(optimizer, max_lr=0.5, total_steps=total))
        return made[-1]

    model, trainer = _fit_scheduled("prune_easy", cosine, max_epochs=3)
    assert trainer.global_step != model.epochs[0][0] * 3 and abs(model.final_lr) <= 1e-12
    assert all(b <= a for a, b in zip(model.lrs, model.lrs[1:]))
    model, trainer = _fit_scheduled("prune_easy", one_cycle, max_epochs=3)
    assert made[-1].last_epoch == made[-1].total_steps != trainer.global_step
    with pytest.warns(UserWarning, match="StepLR follows the number of steps taken"):
        _fit_scheduled("prune_easy", lambda optimizer, total: sched.StepLR(optimizer, 5), max_epochs=2)


def test_a_followed_schedule_resumes_mid_epoch_with_the_same_learning_rates(tmp_path):
    import pytorch_lightning as pl

    import hardmine as hm

    class Resumable(_Scheduled):
        def on_train_batch_end(self, *args):  # on_train_epoch_start is not called in a resumed epoch
            pass

    def fit(root, ckpt_path=None):
        miner = HardMiningCallback(policy=hm.build_policy("prune_easy", ratio=0.5), batch_size=8, seed=3)
        model = Resumable(miner)
        every = pl.callbacks.ModelCheckpoint(dirpath=root, filename="step{step}", every_n_train_steps=5,
                                             save_top_k=-1, auto_insert_metric_name=False)
        pl.Trainer(max_epochs=3, accelerator="cpu", callbacks=[miner, every], logger=False, enable_progress_bar=False,
                   enable_model_summary=False).fit(model, ckpt_path=ckpt_path)
        return model

    full = fit(tmp_path / "full")
    resumed = fit(tmp_path / "again", ckpt_path=tmp_path / "full" / "step10.ckpt")  # inside the second epoch
    assert resumed.lrs == full.lrs[10:] and resumed.final_lr == full.final_lr == 0.0
    checkpoint = torch.load(tmp_path / "full" / "step10.ckpt", weights_only=True)  # plain values
    assert checkpoint["lr_schedulers"][0]["total_iters"] == full.epochs[0][0] * 3
