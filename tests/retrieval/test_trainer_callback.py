"""RefreshNegativesCallback inside a real SentenceTransformerTrainer (a tiny static-embedding model)."""

import numpy as np
import pytest
import torch
from datasets import Dataset

pytest.importorskip("sentence_transformers")
from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer  # noqa: E402
from sentence_transformers import SentenceTransformerTrainingArguments as Args  # noqa: E402
from sentence_transformers.sentence_transformer import losses  # noqa: E402
from sentence_transformers.sentence_transformer.modules import StaticEmbedding  # noqa: E402
from textmodel import WORDS  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from tokenizers.pre_tokenizers import Whitespace  # noqa: E402

from hardmine.checkpoint import load_state  # noqa: E402
from hardmine.retrieval import RefreshNegativesCallback  # noqa: E402


def tiny_model():
    torch.manual_seed(0)
    vocab = ["[UNK]", "[PAD]", "a", "the", "near", "chases", "placeholder", *WORDS]
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = Whitespace()
    return SentenceTransformer(modules=[StaticEmbedding(tok, embedding_dim=16)], device="cpu")


def rows(n=16):
    rng = np.random.default_rng(0)
    anchors, positives = [], []
    for _ in range(n):
        w = [WORDS[j] for j in rng.choice(len(WORDS), 3, replace=False)]
        anchors.append(f"a {w[0]} chases the {w[1]} near {w[2]}")
        positives.append(f"{w[0]} {w[1]}")
    corpus = [f"{a} {b}" for a in WORDS[:12] for b in WORDS[12:20]]
    data = {"anchor": anchors, "positive": positives, "negative_1": [f"placeholder {i}" for i in range(n)],
            "negative_2": [f"placeholder {i}" for i in range(n)]}
    return Dataset.from_dict(data), corpus


class Spy:
    def __init__(self, collate):
        self.collate, self.seen = collate, []

    def __getattr__(self, name):
        return getattr(self.collate, name)

    def __call__(self, features):
        self.seen.append([f["negative_1"] for f in features])
        return self.collate(features)


def trainer_for(tmp_path, ds, callback, max_steps=6):
    args = Args(output_dir=str(tmp_path), max_steps=max_steps, per_device_train_batch_size=4, save_steps=3,
                logging_steps=100, report_to=[], seed=0, learning_rate=0.05, use_cpu=True,
                dataloader_num_workers=0)
    model = tiny_model()
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds,
                                         loss=losses.MultipleNegativesRankingLoss(model), callbacks=[callback])
    spy = Spy(trainer.data_collator)
    trainer.data_collator = spy
    return trainer, spy


def test_refreshes_swap_negatives_and_state_is_checkpointed(tmp_path):
    ds, corpus = rows()
    cb = RefreshNegativesCallback(ds, corpus=corpus, refresh_every=2, range_max=40, mine_at_start=True)
    trainer, spy = trainer_for(tmp_path, ds, cb)
    trainer.train()
    assert [(r.step, r.reason) for r in cb.history] == [(0, "initial"), (2, "schedule"), (4, "schedule")]
    assert len(spy.seen) >= 6
    assert all(t.startswith("placeholder") for t in spy.seen[0])  # drawn before the first mining
    later = [t for batch in spy.seen[-5:] for t in batch]
    assert later and not any(t.startswith("placeholder") for t in later)
    assert set(later) <= set(corpus) | set(ds["positive"])  # other queries' positives are candidates too
    assert ds.format["type"] is None  # the transform is removed when training ends

    saved = load_state(tmp_path / "checkpoint-3" / "hardmine_negatives.pt")
    fresh = RefreshNegativesCallback(ds, corpus=corpus, refresh_every=2, range_max=40, mine_at_start=True)
    fresh.load_state_dict(saved)
    assert [r.step for r in fresh.history] == [0, 2]
    np.testing.assert_array_equal(fresh.pool.negatives(np.arange(4)), np.asarray(saved["pool"]["indices"])[:4])

    resumed_cb = RefreshNegativesCallback(ds, corpus=corpus, refresh_every=2, range_max=40, mine_at_start=True)
    resumed, _ = trainer_for(tmp_path, ds, resumed_cb)
    resumed.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    assert [r.step for r in resumed_cb.history] == [0, 2, 4]  # restored 0 and 2, then re-mined at 4


def test_drift_trigger(tmp_path):
    ds, corpus = rows()
    cb = RefreshNegativesCallback(ds, corpus=corpus, refresh_every=None, drift_threshold=1e-9,
                                  drift_check_every=2, num_probe=8)
    trainer, spy = trainer_for(tmp_path, ds, cb, max_steps=5)  # drift checked at steps 2 and 4
    trainer.train()
    assert [r.reason for r in cb.history] == ["given", "drift", "drift"]
    assert all(t.startswith("placeholder") for t in spy.seen[1])  # the dataset's own negatives until step 2
    assert not any(t.startswith("placeholder") for t in spy.seen[-1])


def test_bad_input_named():
    ds, corpus = rows()
    with pytest.raises(ValueError, match="negative_columns"):
        RefreshNegativesCallback(ds.remove_columns(["negative_1", "negative_2"]), corpus=corpus)
    with pytest.raises(ValueError, match="anchor_column_name = 'query'"):
        RefreshNegativesCallback(ds, anchor_column_name="query")
    with pytest.raises(TypeError, match=r"corpus\[0\]"):
        RefreshNegativesCallback(ds, corpus=[1, 2])
    with pytest.raises(TypeError, match="unknown mining arguments"):
        RefreshNegativesCallback(ds, corpus=corpus, margin=0.1)
    cb = RefreshNegativesCallback(ds, corpus=corpus)
    with pytest.raises(ValueError, match="state_version"):
        cb.load_state_dict({"state_version": 0})
