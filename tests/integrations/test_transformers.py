"""HardMiningTrainer with a tiny randomly initialised BERT: the index column survives remove_unused_columns,
resume gives the uninterrupted batches and memory, prune_easy reaches the configured epochs with the learning-rate
schedule finished, and accelerate's BatchSamplerShard leaves the (already rank-aware) batches as they are."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from accelerate.data_loader import BatchSamplerShard

import hardmine as hm
from hardmine.integrations.transformers import HardMiningTrainer, leave_sharded
from tests.integrations import transformers_run as run

PER_EPOCH = run.N // 8


def test_single_process_trains_on_every_sample_each_epoch(tmp_path):
    trainer = run.fit(str(tmp_path), policy="uniform", epochs=2)
    assert trainer.state.global_step == len(trainer.seen) == 2 * PER_EPOCH
    for epoch in range(2):
        visits = np.bincount(np.concatenate(trainer.seen[epoch * PER_EPOCH:(epoch + 1) * PER_EPOCH]),
                             minlength=run.N)
        np.testing.assert_array_equal(visits, np.ones(run.N))
    assert trainer.hardmine_memory.get("seen").sum() == 2 * run.N
    assert trainer.lrs[1] == pytest.approx(1e-2 * (1 - 1 / (2 * PER_EPOCH)))  # the step schedule, unchanged


def test_resume_gives_the_uninterrupted_batches_and_memory(tmp_path):
    workers = 2  # DataLoader workers and accelerate both draw ahead of the loop
    full = run.fit(str(tmp_path / "full"), epochs=2, save_at=(5, PER_EPOCH), dataloader_num_workers=workers)
    for step in (5, PER_EPOCH):  # mid-epoch and at the epoch end
        resumed = run.fit(str(tmp_path / f"resumed{step}"), epochs=2, dataloader_num_workers=workers,
                          resume=str(tmp_path / "full" / f"checkpoint-{step}"))
        assert resumed.seen == full.seen[step:], step
        assert resumed.state.global_step == full.state.global_step
        np.testing.assert_array_equal(resumed.hardmine_memory.get("score"), full.hardmine_memory.get("score"))
        assert resumed.lrs == full.lrs[step:]


def test_prune_easy_reaches_the_configured_epochs_with_the_schedule_finished(tmp_path):
    epochs = 4
    trainer = run.fit(str(tmp_path / "full"), policy="prune_easy", epochs=epochs, save_at=(PER_EPOCH + 2,))
    assert trainer.hardmine_sampler.policy.epochs == epochs  # a named policy anneals over the run's epochs
    assert trainer.hardmine_sampler.epoch == epochs - 1
    assert trainer.state.global_step == len(trainer.seen) < epochs * PER_EPOCH  # epochs were pruned
    assert trainer.lrs[0] == pytest.approx(1e-2)
    assert trainer.lr_scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # the schedule ended
    resumed = run.fit(str(tmp_path / "resumed"), policy="prune_easy", epochs=epochs,
                      resume=str(tmp_path / "full" / f"checkpoint-{PER_EPOCH + 2}"))  # inside the pruned epoch 1
    assert resumed.seen == trainer.seen[PER_EPOCH + 2:] and resumed.lrs == trainer.lrs[PER_EPOCH + 2:]


def test_max_steps_runs_until_max_steps_when_epochs_shrink(tmp_path):
    trainer = run.fit(str(tmp_path), policy=hm.PruneEasyPolicy(ratio=0.7, epochs=4), epochs=1,
                      max_steps=3 * PER_EPOCH)
    assert trainer.state.global_step == 3 * PER_EPOCH and trainer.hardmine_sampler.epoch >= 3


@pytest.mark.parametrize("split_batches", [False, True])
@pytest.mark.parametrize("even_batches", [False, True])
def test_accelerate_batch_sampler_shard_passes_the_batches_through(split_batches, even_batches):
    sampler = hm.HardExampleSampler(hm.ScoreMemory(30), 4, policy="uniform", seed=1)  # 8 batches, the last of 2
    expected = [list(b) for b in hm.HardExampleSampler(hm.ScoreMemory(30), 4, policy="uniform", seed=1)]

    class Prepared:  # what accelerate.prepare returns on process 1 of 2: a DataLoaderShard over the shard
        batch_sampler = BatchSamplerShard(sampler, num_processes=2, process_index=1, split_batches=split_batches,
                                          even_batches=even_batches)

    shard = leave_sharded(Prepared(), sampler).batch_sampler
    assert [list(b) for b in shard] == expected and len(shard) == len(expected)


def test_sampler_batches_index_a_datasets_dataset_and_a_torch_dataset():
    from torch.utils.data import DataLoader, TensorDataset

    sampler = hm.HardExampleSampler(hm.ScoreMemory(run.N), 8, policy="importance", seed=1)
    rows = next(iter(DataLoader(run.data(), batch_sampler=sampler, collate_fn=lambda rows: rows)))
    assert len(rows) == 8 and set(rows[0]) == {"input_ids", "attention_mask", "labels", "text"}
    idx, _ = next(iter(DataLoader(hm.WithIndex(TensorDataset(torch.zeros(run.N))), batch_sampler=sampler)))
    assert idx.dtype == torch.int64 and idx.shape == (8,)


def test_errors_name_the_argument(tmp_path):
    from transformers import TrainingArguments

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter([])

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    with pytest.raises(TypeError, match="train_dataset must be a map-style"):
        HardMiningTrainer(model=run.model(), args=args, train_dataset=Stream())
    with pytest.raises(ValueError, match="policy must be one of"):
        HardMiningTrainer(model=run.model(), args=args, train_dataset=run.data(), hardmine_policy="nope")
    accumulating = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[],
                                     gradient_accumulation_steps=2)
    with pytest.raises(ValueError, match="changes epoch lengths.*gradient_accumulation_steps=2"):
        HardMiningTrainer(model=run.model(), args=accumulating, train_dataset=run.data(), hardmine_policy="prune_easy")
    with pytest.raises(TypeError, match="per_sample_loss must be callable"):
        HardMiningTrainer(model=run.model(), args=args, train_dataset=run.data(), per_sample_loss=3)


def _torchrun(*args: str) -> None:
    """`transformers_run.py ARGS` on 2 processes under torch.distributed.run (a 300 s timeout: a hang fails)."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)]), "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(port), str(Path(run.__file__)), *args], env=env, timeout=300,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_under_torch_distributed_run_visit_every_sample(tmp_path):
    _torchrun(str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps = 2 * run.N // 16  # 2 epochs of global batches of 2 x 8
    assert [r["steps"] for r in ranks] == [steps, steps] and [r["world_size"] for r in ranks] == [2, 2]
    visits = np.bincount(np.concatenate([b for r in ranks for b in r["seen"]]), minlength=run.N)
    np.testing.assert_array_equal(visits, np.full(run.N, 2))  # nothing dropped, nothing padded


@pytest.fixture(scope="module")
def uninterrupted_two_processes(tmp_path_factory):
    """The importance run under torch.distributed.run, checkpointed after steps 3 and 6."""
    out = tmp_path_factory.mktemp("full")
    _torchrun(str(out), "full")
    return out


@pytest.mark.parametrize("step", [3, 6])  # mid-epoch 0 and mid-epoch 1 of 4 global steps each
def test_two_processes_resumed_mid_epoch_under_torch_distributed_run_match_the_uninterrupted_run(
        uninterrupted_two_processes, tmp_path, step):
    out = uninterrupted_two_processes
    _torchrun(str(tmp_path), "resume", str(out / f"checkpoint-{step}"))
    for r in (0, 1):
        full = json.loads((out / f"rank{r}-full.json").read_text())
        resumed = json.loads((tmp_path / f"rank{r}-resume.json").read_text())
        assert resumed["seen"] == full["seen"][step:], r  # this rank's batches, in order
        assert resumed["steps"] == full["steps"] == 2 * run.N // 16
        assert resumed["scores"] == full["scores"]  # every rank's memory, identical
        assert (resumed["epoch"], resumed["position"]) == (full["epoch"], full["position"])
        assert resumed["state"] == full["state"] and resumed["memory"] == full["memory"]  # the sampler state


def test_the_memory_gets_the_label_column_and_class_balanced_draws_classes_equally(tmp_path):
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], per_device_train_batch_size=8)
    train = run.data()
    labels = np.asarray(train["labels"])
    trainer = HardMiningTrainer(model=run.model(), args=args, train_dataset=train, hardmine_policy="class_balanced")
    np.testing.assert_array_equal(trainer.hardmine_memory.labels, labels)
    drawn = np.concatenate(list(trainer.hardmine_sampler))
    counts = np.bincount(labels[drawn], minlength=2)
    assert abs(counts[0] - counts[1]) <= 1 and np.bincount(labels).min() < counts.min()
    given = HardMiningTrainer(model=run.model(), args=args, train_dataset=train, hardmine_labels=1 - labels)
    np.testing.assert_array_equal(given.hardmine_memory.labels, 1 - labels)
    with pytest.raises(ValueError, match="hardmine_labels must hold one class id per training sample"):
        HardMiningTrainer(model=run.model(), args=args, train_dataset=train, hardmine_labels=labels[:3])
    unlabeled = HardMiningTrainer(model=run.model(), args=args, train_dataset=train.remove_columns("labels"))
    assert unlabeled.hardmine_memory.labels is None


def test_stats_reach_the_log_history_and_the_logged_epoch_never_goes_backwards(tmp_path):
    epochs, at = 3, PER_EPOCH + PER_EPOCH // 2  # a checkpoint in the middle of epoch 1
    full = run.fit(str(tmp_path / "full"), policy="prune_easy", epochs=epochs, save_at=(at,),
                   logging_strategy="steps", logging_steps=1)
    logs = [h for h in full.state.log_history if "loss" in h]
    assert len(logs) == full.state.global_step
    assert all("hardmine/score_mean" in h and "hardmine/keep_ratio" in h for h in logs)
    logged = [h["epoch"] for h in logs]
    assert logged == sorted(logged) and logged[-1] == pytest.approx(epochs), logged
    resumed = run.fit(str(tmp_path / "resumed"), policy="prune_easy", epochs=epochs, logging_strategy="steps",
                      logging_steps=1, resume=str(tmp_path / "full" / f"checkpoint-{at}"))
    again = [h["epoch"] for h in resumed.state.log_history if "loss" in h]
    assert again == sorted(again) and again == logged, (again, logged)
