"""HardStreamTrainer: a HardStream over a `datasets` IterableDataset trains a tiny random BERT for max_steps, and a
run resumed from a mid-epoch checkpoint sees the uninterrupted run's candidate batches (into the next epoch)."""

import warnings

import pytest
import torch

import hardmine as hm

pytest.importorskip("transformers")
pytest.importorskip("datasets")

import datasets
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments

from hardmine.integrations.transformers_stream import IDS, HardStreamTrainer

N, LENGTH, VOCAB = 40, 8, 100


def rows(shards):
    for shard in shards:
        g = torch.Generator().manual_seed(shard)
        for _ in range(N // 2):
            ids = torch.randint(1, VOCAB, (LENGTH,), generator=g)
            yield {"input_ids": ids.tolist(), "labels": int((ids < 20).any())}


class Recording(HardStreamTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if IDS in inputs:
            self.seen.append(inputs[IDS].tolist())
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def fit(out, resume=None):
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32,
                                                     max_position_embeddings=LENGTH, num_labels=2))
    source = datasets.IterableDataset.from_generator(rows, gen_kwargs={"shards": [0, 1]}).with_format("torch")
    stream = hm.HardStream(source, batch_size=4, candidates=2, policy="online_top_loss",
                           replay=hm.streams.HardReplay(capacity=6, fraction=0.25))
    args = TrainingArguments(output_dir=out, max_steps=8, save_steps=3, per_device_train_batch_size=4,
                             report_to=[], use_cpu=True, disable_tqdm=True, learning_rate=1e-2)
    trainer = Recording(model=model, args=args, train_dataset=stream)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)
    return trainer, stream


def test_resume_mid_epoch_gives_the_uninterrupted_candidate_batches(tmp_path):
    full, stream = fit(str(tmp_path / "full"))
    assert len(full.seen) == 8 and stream.epoch == 1  # 5 batches of 8 candidates an epoch
    for step in (3, 6):
        resumed, again = fit(str(tmp_path / f"r{step}"), resume=str(tmp_path / "full" / f"checkpoint-{step}"))
        assert resumed.seen == full.seen[step:], step
        assert torch.equal(again.state_dict()["consumed"], stream.state_dict()["consumed"])


def test_a_run_without_max_steps_is_refused(tmp_path):
    model = BertForSequenceClassification(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                                                     num_attention_heads=2, intermediate_size=32, num_labels=2))
    stream = hm.HardStream([{"input_ids": torch.ones(LENGTH, dtype=torch.long), "labels": 0}] * 8, batch_size=4)
    with pytest.raises(ValueError, match="max_steps"):
        HardStreamTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[],
                                                              use_cpu=True), train_dataset=stream)
