"""HardMiningTrainer with token selection on a tiny GPT-2: it trains, keeps the configured share of tokens after
the warm-up, resumes exactly from a checkpoint (batches, losses, weights, the selector's and the reference's
counts), and refuses inconsistent arguments."""

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from transformers import TrainingArguments

from hardmine.integrations.llm_trainer import TOKENS_FILE
from hardmine.integrations.transformers import HardMiningTrainer
from hardmine.llm import ReferenceModel, TokenLossStore, TokenSelector
from tests.integrations import llm_run as run

STEPS = 2 * run.N // 8


def test_a_tiny_gpt2_trains_with_excess_loss_selection_and_resumes_exactly(tmp_path):
    def make():
        return TokenSelector(keep=0.5, rule="excess_loss", warmup=4), ReferenceModel(run.model(seed=1))

    tokens, reference = make()
    full = run.fit(str(tmp_path / "full"), tokens, reference, epochs=2, save_at=(3,))
    assert full.state.global_step == len(full.losses) == STEPS
    assert full.losses[-1] < full.losses[0]  # it learns (the sequences count up)
    assert tokens.steps == STEPS and 0.64 < tokens.stats()["keep_ratio"] < 0.72  # 4 of 12 steps keep all
    assert reference.forward_tokens == STEPS * 8 * run.LENGTH
    assert (tmp_path / "full" / "checkpoint-3" / TOKENS_FILE).is_file()

    tokens2, reference2 = make()
    resumed = run.fit(str(tmp_path / "resumed"), tokens2, reference2, epochs=2,
                      resume=str(tmp_path / "full" / "checkpoint-3"))
    assert resumed.seen == full.seen[3:]
    assert resumed.losses == full.losses[3:]  # the warm-up's 4th step is still a warm-up step after the resume
    assert tokens2.state_dict() == tokens.state_dict() and reference2.forward_tokens == reference.forward_tokens
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_precomputed_store_gives_the_training_of_the_reference_model_on_the_fly(tmp_path):
    frozen = ReferenceModel(run.model(seed=1))
    ds = run.data()
    ids, mask, labels = (torch.tensor(ds[c]) for c in ("input_ids", "attention_mask", "labels"))
    batches = [(torch.arange(i, i + 16), {"input_ids": ids[i:i + 16], "attention_mask": mask[i:i + 16]},
                labels[i:i + 16]) for i in range(0, run.N, 16)]
    store = TokenLossStore.build(tmp_path / "ref.npy", frozen, batches, run.N, run.LENGTH)
    on_the_fly = run.fit(str(tmp_path / "a"), TokenSelector(0.5, "excess_loss"), ReferenceModel(run.model(seed=1)))
    stored = run.fit(str(tmp_path / "b"), TokenSelector(0.5, "excess_loss"), store)
    np.testing.assert_allclose(stored.losses, on_the_fly.losses, rtol=1e-5)


def test_top_loss_keeps_the_share_and_logs_it(tmp_path):
    tokens = TokenSelector(keep=0.3, rule="top_loss", scope="sequence")
    trainer = run.fit(str(tmp_path), tokens, epochs=1, logging_strategy="steps", logging_steps=2)
    logged = [h for h in trainer.state.log_history if "hardmine/tokens_keep_ratio" in h]
    assert logged and 0.3 <= logged[-1]["hardmine/tokens_keep_ratio"] < 0.5  # ceil per sequence of 3..9 tokens


def test_inconsistent_arguments_are_refused_naming_them(tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    common = {"model": run.model(), "args": args, "train_dataset": run.data()}
    with pytest.raises(ValueError, match="needs hardmine_reference"):
        HardMiningTrainer(**common, hardmine_tokens=TokenSelector(0.5, "excess_loss"))
    with pytest.raises(ValueError, match="hardmine_reference is read only by.*'top_loss'"):
        HardMiningTrainer(**common, hardmine_tokens=TokenSelector(0.5, "top_loss"), hardmine_reference=run.model())
    with pytest.raises(TypeError, match="hardmine_tokens must be a hardmine.llm.TokenSelector"):
        HardMiningTrainer(**common, hardmine_tokens=0.5)
    with pytest.raises(TypeError, match="hardmine_reference must be"):
        HardMiningTrainer(**common, hardmine_tokens=TokenSelector(0.5, "excess_loss"), hardmine_reference="gpt2")
    trainer = HardMiningTrainer(**common, hardmine_tokens=TokenSelector(0.5, "top_loss"))
    packed = r"one row per sample, got labels \(1, 12\) for 4 samples \(packing"  # 4 samples in 1 row
    with pytest.raises(ValueError, match=packed):
        trainer._hardmine_token_loss(torch.arange(4), {}, torch.zeros(1, 12, dtype=torch.long), None)


def test_resume_from_a_checkpoint_without_token_state_is_refused(tmp_path):
    full = run.fit(str(tmp_path / "full"), TokenSelector(0.5, "top_loss"), epochs=1, save_at=(2,))
    (tmp_path / "full" / "checkpoint-2" / TOKENS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=TOKENS_FILE):
        run.fit(str(tmp_path / "again"), TokenSelector(0.5, "top_loss"), epochs=1,
                resume=str(tmp_path / "full" / "checkpoint-2"))
    assert full.state.global_step == run.N // 8
