"""Sample-level selection of sequences: the per-sequence loss is the mean over label tokens, and the sampler's
candidate policies (online_top_loss, rho_loss) and prune_easy rank sequences by it."""

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset
from transformers import GPT2Config, GPT2LMHeadModel

import hardmine as hm
from hardmine.llm import sequence_cross_entropy, sequence_losses, token_losses


def tiny_gpt2(seed):
    torch.manual_seed(seed)
    return GPT2LMHeadModel(GPT2Config(vocab_size=30, n_positions=8, n_embd=32, n_layer=2, n_head=2,
                                      bos_token_id=1, eos_token_id=1))


def sequences(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 30, (n, 8), generator=g)
    labels = ids.clone()
    labels[::3, 5:] = -100  # padding
    labels[4] = -100  # nothing to learn
    return ids, labels


def test_sequence_loss_is_the_mean_over_label_tokens_and_zero_without_any():
    loss = torch.tensor([[1.0, 3.0, 9.0], [2.0, 2.0, 2.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    assert sequence_losses(loss, mask).tolist() == [2.0, 2.0, 0.0]
    with pytest.raises(ValueError, match="mask must be a bool"):
        sequence_losses(loss, mask[:2])


def test_sequence_cross_entropy_of_model_outputs():
    model, (ids, labels) = tiny_gpt2(0), sequences()
    out = model(input_ids=ids)
    per = sequence_cross_entropy(out, labels)
    loss, mask = token_losses(out.logits, labels)
    assert per.shape == (24,) and per[4] == 0
    torch.testing.assert_close(per[0], loss[0][mask[0]].mean())


@pytest.mark.parametrize("name", ["online_top_loss", "rho_loss"])
def test_candidate_policies_keep_the_sequences_of_highest_loss_or_reducible_loss(name):
    model, reference, (ids, labels) = tiny_gpt2(0), tiny_gpt2(1), sequences()
    il = hm.reference_losses(reference, TensorDataset(ids, labels), loss_fn=sequence_cross_entropy, progress=False)
    il = np.maximum(il, 0.0)
    assert il[4] == 0.0 and il.shape == (24,)
    extra = {"irreducible_loss": il} if name == "rho_loss" else {}
    sampler = hm.HardExampleSampler(hm.ScoreMemory(24), 4, policy=hm.build_policy(name, candidates=3, **extra),
                                    seed=0)
    idx = np.asarray(next(iter(sampler)))
    with torch.no_grad():
        per = sequence_cross_entropy(model(input_ids=ids[idx]), labels[idx]).numpy()
    sampler.update(idx, per)
    kept = set(idx[sampler.weights(idx).numpy() > 0].tolist())
    score = per - il[idx] if name == "rho_loss" else per
    order = np.lexsort((idx, -score.astype(np.float64)))
    assert kept == set(idx[order[:4]].tolist())


def test_prune_easy_drops_only_sequences_below_the_mean_loss():
    model, (ids, labels) = tiny_gpt2(0), sequences()
    memory = hm.ScoreMemory(24)
    sampler = hm.HardExampleSampler(memory, 4, policy=hm.build_policy("prune_easy", ratio=0.9, epochs=4), seed=0)
    with torch.no_grad():
        per = sequence_cross_entropy(model(input_ids=ids), labels).numpy()
    for idx in sampler:
        sampler.update(idx, per[np.asarray(idx)])
    sampler.set_epoch(1)
    seen = np.concatenate([np.asarray(b) for b in sampler])
    dropped = np.setdiff1d(np.arange(24), seen)
    assert dropped.size > 0 and (per[dropped] < per.mean()).all() and 4 in dropped
