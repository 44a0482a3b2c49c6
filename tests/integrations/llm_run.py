"""A tiny causal-LM run with HardMiningTrainer and token selection: a randomly initialised 2-layer GPT-2
(vocabulary 50, width 32), sequences of varying length right-padded to 12, labels -100 on padding and on a
2-token prompt. Records the indices and the loss of every training step."""

from __future__ import annotations

import logging
import warnings

import datasets
import torch
from transformers import GPT2Config, GPT2LMHeadModel, TrainingArguments
from transformers.utils import logging as hf_logging

from hardmine.integrations.transformers import HardMiningTrainer
from tests.integrations.transformers_run import SaveAt

N, LENGTH, VOCAB = 48, 12, 50


def data() -> datasets.Dataset:
    """N sequences of 5..12 tokens that count up from a random start (learnable), right-padded with 0."""
    g = torch.Generator().manual_seed(0)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for _ in range(N):
        size = int(torch.randint(5, LENGTH + 1, (1,), generator=g))
        start = int(torch.randint(1, VOCAB - LENGTH, (1,), generator=g))
        ids = list(range(start, start + size)) + [0] * (LENGTH - size)
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * size + [0] * (LENGTH - size))
        rows["labels"].append([-100, -100] + ids[2:size] + [-100] * (LENGTH - size))
    return datasets.Dataset.from_dict(rows)


def model(seed: int = 0) -> GPT2LMHeadModel:
    """A 2-layer GPT-2 of width 32 without dropout, randomly initialised from `seed`."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=1)
    return GPT2LMHeadModel(config)


class RecordSteps:
    """A trainer mixin that records each training batch's indices and loss (`seen`, `losses`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen, self.losses = [], []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        index = inputs.get("hardmine_index")
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if index is not None:
            self.seen.append(index.tolist())
            self.losses.append(float(loss))
        return loss


class Recording(RecordSteps, HardMiningTrainer):
    """HardMiningTrainer recording its steps."""


def fit(out: str, tokens, reference=None, epochs: int = 2, resume: str | None = None, save_at=(), **args):
    """Train `epochs` epochs (batch 8, uniform order, checkpoints after the steps `save_at`)."""
    hf_logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    arguments = TrainingArguments(output_dir=out, per_device_train_batch_size=8, num_train_epochs=epochs,
                                  learning_rate=1e-2, save_strategy="no", report_to=[], use_cpu=True, seed=0,
                                  disable_tqdm=True, **{"logging_strategy": "no", **args})
    trainer = Recording(model=model(), args=arguments, train_dataset=data(), hardmine_policy="uniform",
                        hardmine_tokens=tokens, hardmine_reference=reference, callbacks=[SaveAt(save_at)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)
    return trainer
