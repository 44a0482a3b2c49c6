"""A tiny Hugging Face Trainer run with HardMiningTrainer: a randomly initialised BERT (vocabulary 100), no download.

Records the indices of every batch each training step consumed. Also runs under `torch.distributed.run`
(`python -m torch.distributed.run --nproc_per_node 2 transformers_run.py OUT_DIR`), writing rankR.json.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings

import datasets
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    TrainerCallback,
    TrainingArguments,
)
from transformers.utils import logging as hf_logging

from hardmine.distributed import digest
from hardmine.integrations.transformers import HardMiningTrainer

N, LENGTH, VOCAB = 64, 8, 100


def data(extra_column: bool = True) -> datasets.Dataset:
    """N token sequences; the label is whether token 5 occurs. A text column the model does not take."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (N, LENGTH), generator=g)
    columns = {"input_ids": ids.tolist(), "attention_mask": torch.ones(N, LENGTH, dtype=torch.long).tolist(),
               "labels": (ids < 20).any(1).long().tolist()}
    if extra_column:
        columns["text"] = [f"sample {i}" for i in range(N)]
    return datasets.Dataset.from_dict(columns)


def model() -> BertForSequenceClassification:
    """A 1-layer BERT with hidden size 16, randomly initialised from seed 0."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=LENGTH, num_labels=2)
    return BertForSequenceClassification(config)


class Recording(HardMiningTrainer):
    """HardMiningTrainer that records each training batch's indices and each step's learning rate."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen, self.lrs = [], []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if "hardmine_index" in inputs:
            self.seen.append(inputs["hardmine_index"].tolist())
            self.lrs.append(self.optimizer.param_groups[0]["lr"])
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


class SaveAt(TrainerCallback):
    """Checkpoint after the given global steps."""

    def __init__(self, steps):
        self.steps = set(steps)

    def on_step_end(self, args, state, control, **kwargs):
        control.should_save = state.global_step in self.steps
        return control


def fit(out: str, policy: str = "importance", epochs: int = 3, resume: str | None = None, save_at=(), **args):
    """Train `epochs` epochs (batch 8, checkpoints in `out` after the steps `save_at`); return the trainer."""
    hf_logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    args = {"logging_strategy": "no", **args}
    arguments = TrainingArguments(output_dir=out, per_device_train_batch_size=8, num_train_epochs=epochs,
                                  learning_rate=1e-2, save_strategy="no", report_to=[], use_cpu=True, seed=0,
                                  disable_tqdm=True, **args)
    trainer = Recording(model=model(), args=arguments, train_dataset=data(), hardmine_policy=policy,
                        callbacks=[SaveAt(save_at)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)
    return trainer


def main(out: str, mode: str = "visit", checkpoint: str | None = None) -> None:
    """The 2-process runs; every rank writes the batches it trained on (rankR.json, or rankR-MODE.json).

    mode "visit": uniform, 2 epochs. "full": importance, 2 epochs, 2 DataLoader workers (they draw ahead), a
    checkpoint after step 3 (mid-epoch 0) and 6 (mid-epoch 1). "resume": the same run resumed from `checkpoint`;
    both also write the memory's scores and digests of the sampler's and the memory's final states."""
    if mode == "visit":
        trainer = fit(out, policy="uniform", epochs=2, ddp_find_unused_parameters=False)
    else:
        trainer = fit(out, policy="importance", epochs=2, ddp_find_unused_parameters=False,
                      save_at=(3, 6) if mode == "full" else (), resume=checkpoint, dataloader_num_workers=2)
    rank = int(os.environ.get("RANK", "0"))
    record = {"seen": trainer.seen, "steps": trainer.state.global_step,
              "world_size": trainer.hardmine_sampler.world_size}
    if mode != "visit":
        state = trainer.hardmine_sampler.state_dict()
        memory = trainer.hardmine_memory
        record.update(scores=memory.get("score").tolist(), epoch=state["epoch"], position=state["position"],
                      state=digest(state), memory=digest(memory.state_dict()))
    name = f"rank{rank}.json" if mode == "visit" else f"rank{rank}-{mode}.json"
    with open(os.path.join(out, name), "w") as f:
        json.dump(record, f)
    if torch.distributed.is_initialized():  # a process group left to interpreter shutdown can abort gloo's threads
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
