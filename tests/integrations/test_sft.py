"""HardMiningSFTTrainer: TRL's SFTTrainer trains a tiny GPT-2 on text with hardmine's sampler and token selection
(every sample once per epoch, the configured share of tokens back-propagated), and resumes exactly."""

import logging
import warnings

import pytest
import torch

pytest.importorskip("trl")

import datasets
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from transformers.utils import logging as hf_logging
from trl import SFTConfig

from hardmine.integrations.sft import HardMiningSFTTrainer, KeepIndex
from hardmine.llm import ReferenceModel, TokenSelector
from tests.integrations.llm_run import RecordSteps, SaveAt

TEXTS = [f"the {a} {b} sat on the {c} mat" for a in ("big", "small", "red", "old") for b in ("cat", "dog", "fox")
         for c in ("green", "blue")]  # 24 short documents


def tokenizer():
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(TEXTS, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[EOS]"]))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")


def model(tok, seed=0):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=16, n_embd=32, n_layer=2, n_head=2,
                                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=2,
                                      eos_token_id=2, pad_token_id=0))


class Recording(RecordSteps, HardMiningSFTTrainer):
    """HardMiningSFTTrainer recording its steps."""


def fit(out, tokens, resume=None, save_at=()):
    hf_logging.set_verbosity_error()
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    tok = tokenizer()
    config = SFTConfig(output_dir=out, per_device_train_batch_size=4, num_train_epochs=2, learning_rate=1e-2,
                       max_length=16, use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no",
                       disable_tqdm=True, seed=0)
    trainer = Recording(model=model(tok), args=config, train_dataset=datasets.Dataset.from_dict({"text": TEXTS}),
                        processing_class=tok, hardmine_policy="uniform", hardmine_tokens=tokens,
                        hardmine_reference=ReferenceModel(model(tok, seed=1)), callbacks=[SaveAt(save_at)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train(resume_from_checkpoint=resume)
    return trainer


def test_sft_trainer_trains_with_token_selection_and_resumes_exactly(tmp_path):
    tokens = TokenSelector(keep=0.5, rule="excess_loss", warmup=2)
    full = fit(str(tmp_path / "full"), tokens, save_at=(4,))
    assert len(full.seen) == full.state.global_step == 12
    assert sorted(i for batch in full.seen[:6] for i in batch) == list(range(24))  # each sample once an epoch
    assert full.losses[-1] < full.losses[0] and 0.5 < tokens.stats()["keep_ratio"] < 0.7
    assert isinstance(full.data_collator, KeepIndex)
    resumed = fit(str(tmp_path / "resumed"), TokenSelector(keep=0.5, rule="excess_loss", warmup=2),
                  resume=str(tmp_path / "full" / "checkpoint-4"))
    assert resumed.seen == full.seen[4:] and resumed.losses == full.losses[4:]


def test_packing_is_refused(tmp_path):
    tok = tokenizer()
    config = SFTConfig(output_dir=str(tmp_path), packing=True, max_length=16, use_cpu=True, report_to=[])
    with pytest.raises(ValueError, match="packing and args.padding_free must be False"):
        HardMiningSFTTrainer(model=model(tok), args=config, processing_class=tok,
                             train_dataset=datasets.Dataset.from_dict({"text": TEXTS}))
