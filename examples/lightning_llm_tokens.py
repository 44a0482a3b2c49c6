"""Token selection (Rho-1's excess loss) in a PyTorch Lightning module: a tiny GPT-2 trained on WordNet glosses.

    PYTHONPATH=src python examples/lightning_llm_tokens.py --steps 200

The three hardmine lines are in `training_step`; the selector's state (its warm-up count) travels in Lightning's
checkpoints through `on_save_checkpoint` / `on_load_checkpoint`. The reference here is a second model trained on
other glosses first; a precomputed `hm.llm.TokenLossStore` is read the same way (`store.token_losses(..., idx)`).
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from transformers import GPT2Config, GPT2LMHeadModel

from hardmine.datasets.wordnet import load_wordnet_nouns
from hardmine.llm import ReferenceModel, TokenSelector, token_losses


class TinyLM(pl.LightningModule):
    """A GPT-2 trained on the tokens `selector` keeps (all of them when selector is None)."""

    def __init__(self, vocab: int, length: int, selector: TokenSelector | None = None,
                 reference: ReferenceModel | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=length, n_embd=64, n_layer=2,
                                                n_head=2, bos_token_id=1, eos_token_id=2))
        self.selector, self.reference = selector, reference

    def training_step(self, batch, batch_idx):
        idx, ids, attention, labels = batch
        loss, mask = token_losses(self.model(input_ids=ids, attention_mask=attention).logits, labels)
        if self.selector is None:
            return TokenSelector.reduce(loss, mask.float())
        ref = self.reference.token_losses({"input_ids": ids, "attention_mask": attention}, labels, idx) \
            if self.reference is not None else None
        weights = self.selector(loss.detach(), mask, ref)  # 1 on the kept tokens
        self.log("kept", weights.sum() / mask.sum().clamp_min(1))
        return self.selector.reduce(loss, weights)  # mean over the kept tokens

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=3e-3)

    def on_save_checkpoint(self, checkpoint):
        if self.selector is not None:
            checkpoint["hardmine_tokens"] = self.selector.state_dict()

    def on_load_checkpoint(self, checkpoint):
        if self.selector is not None:
            self.selector.load_state_dict(checkpoint["hardmine_tokens"])


def glosses(rows: int, length: int, offset: int = 0) -> TensorDataset:
    """(index, input_ids, attention_mask, labels) of `rows` WordNet glosses, byte-level (ids 3..258), padded."""
    texts = load_wordnet_nouns().glosses[offset: offset + rows]
    ids = torch.zeros(rows, length, dtype=torch.long)
    for i, text in enumerate(texts):
        row = [1] + [3 + b for b in text.encode()][: length - 2] + [2]
        ids[i, : len(row)] = torch.tensor(row)
    attention = (ids != 0).long()
    return TensorDataset(torch.arange(rows), ids, attention, ids.masked_fill(attention == 0, -100))


def fit(module: TinyLM, data: TensorDataset, steps: int, ckpt_path: str | None = None,
        **trainer_args) -> pl.Trainer:
    """Train `module` until step `steps` (batches of 16 sequences, CPU), resuming from `ckpt_path` if given."""
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, **trainer_args)
    trainer.fit(module, DataLoader(data, batch_size=16, shuffle=True), ckpt_path=ckpt_path)
    return trainer


def main(steps: int = 200, rows: int = 1000, length: int = 48) -> tuple[TinyLM, TinyLM]:
    """Train a reference on other glosses, then a model on the tokens of highest excess loss; return both."""
    reference = TinyLM(259, length)
    fit(reference, glosses(rows, length, offset=rows), steps, enable_checkpointing=False)
    selector = TokenSelector(keep=0.6, rule="excess_loss", warmup=steps // 10)
    model = TinyLM(259, length, selector, ReferenceModel(reference.model))
    fit(model, glosses(rows, length), steps, enable_checkpointing=False)
    print(f"kept {selector.stats()['keep_ratio']:.2f} of the tokens over {selector.steps} steps")
    return reference, model


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    main(parser.parse_args().steps)
