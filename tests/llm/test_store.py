"""TokenLossStore: a reference's token losses stored once, read by sample id and position (memory-mapped), the same
as computing them on the fly; a missing sample id, a longer or differently tokenised sequence are refused."""

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hardmine.llm import ReferenceModel, TokenLossStore, shift_labels

N, T = 10, 8


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=T, n_embd=32, n_layer=2, n_head=2,
                                      bos_token_id=1, eos_token_id=1))


def data():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 20, (N, T), generator=g)
    lengths = torch.randint(3, T + 1, (N,), generator=g)
    attention = (torch.arange(T) < lengths[:, None]).long()
    labels = ids.masked_fill(attention == 0, -100)
    labels[:, 0] = -100
    return ids, attention, labels


def build(path, rows=range(N)):
    ids, attention, labels = data()
    rows = torch.tensor(list(rows))
    batches = [(rows[i:i + 4], {"input_ids": ids[rows[i:i + 4]], "attention_mask": attention[rows[i:i + 4]]},
                labels[rows[i:i + 4]]) for i in range(0, len(rows), 4)]
    reference = ReferenceModel(tiny_gpt2())
    return TokenLossStore.build(path, reference, batches, N, T), reference


def test_reads_equal_the_reference_on_the_fly_in_any_order_and_with_shorter_batches(tmp_path):
    store, reference = build(tmp_path / "ref.npy")
    assert reference.forward_tokens == N * T and (store.num_samples, store.length) == (N, T)
    ids, attention, labels = data()
    rows = torch.tensor([7, 2, 2, 9])
    on_the_fly = ReferenceModel(tiny_gpt2()).token_losses({"input_ids": ids[rows], "attention_mask": attention[rows]},
                                                         labels[rows])
    torch.testing.assert_close(store.token_losses({}, labels[rows], rows), on_the_fly)
    short = (attention.sum(1) <= 5).nonzero().flatten()
    read = store.token_losses({}, labels[short][:, :5], short)
    torch.testing.assert_close(read, store.token_losses({}, labels[short], short)[:, :5])
    reopened = TokenLossStore(tmp_path / "ref.npy")
    torch.testing.assert_close(reopened.read(rows, shift_labels(labels[rows]) != -100), on_the_fly)


def test_a_missing_sample_id_or_a_different_length_is_refused(tmp_path):
    store, _ = build(tmp_path / "ref.npy", rows=range(6))  # samples 6..9 never stored
    ids, attention, labels = data()
    with pytest.raises(ValueError, match="sample id 7 is missing from the store"):
        store.token_losses({}, labels[[1, 7]], torch.tensor([1, 7]))
    with pytest.raises(ValueError, match=r"sample_ids out of range \[0, 10\)"):
        store.token_losses({}, labels[:2], torch.tensor([1, 10]))
    longer = torch.cat([labels[:2], torch.ones(2, 3, dtype=torch.long)], 1)
    with pytest.raises(ValueError, match="sample id 0 has no stored .*sequence length or tokenisation differs"):
        store.token_losses({}, longer, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="sample_ids are required"):
        store.token_losses({}, labels[:2])
    with pytest.raises(ValueError, match="sample_ids has 1 ids but the batch has 2"):
        store.read(torch.tensor([0]), torch.ones(2, T, dtype=torch.bool))


def test_a_failed_build_leaves_no_file(tmp_path):
    ids, attention, labels = data()
    batches = [(torch.arange(4), {"input_ids": ids[:4]}, labels[:4]),
               (torch.tensor([4, 99]), {"input_ids": ids[4:6]}, labels[4:6])]
    with pytest.raises(ValueError, match=r"sample_ids out of range"):
        TokenLossStore.build(tmp_path / "ref.npy", ReferenceModel(tiny_gpt2()), batches, N, T)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="no token-loss store"):
        TokenLossStore(tmp_path / "ref.npy")
    np.save(tmp_path / "bad.npy", np.zeros((3, 4), dtype=np.float64))
    with pytest.raises(ValueError, match="expected float32"):
        TokenLossStore(tmp_path / "bad.npy")
