"""ReferenceModel: a frozen model's token losses without gradient, in eval mode, its forwarded tokens counted."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hardmine.llm import ReferenceModel, token_losses


def tiny_gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=20, n_positions=6, n_embd=32, n_layer=2, n_head=2,
                                      bos_token_id=1, eos_token_id=1))


def test_token_losses_are_the_models_without_gradient_and_counted():
    model = tiny_gpt2().train()
    ids = torch.randint(0, 20, (3, 6), generator=torch.Generator().manual_seed(1))
    labels = ids.masked_fill(torch.arange(6) >= 4, -100)
    reference = ReferenceModel(model)
    loss = reference.token_losses({"input_ids": ids}, labels)
    assert not loss.requires_grad and not model.training
    expected, _ = token_losses(model(input_ids=ids).logits, labels)
    torch.testing.assert_close(loss, expected.detach())
    reference.token_losses({"input_ids": ids[:2]}, labels[:2])
    assert reference.forward_tokens == 18 + 12
    other = ReferenceModel(tiny_gpt2())
    other.load_state_dict(reference.state_dict())
    assert other.forward_tokens == 30
    with pytest.raises(ValueError, match="forward_tokens"):
        other.load_state_dict({"forward_tokens": -1, "state_version": 1})
    assert other.forward_tokens == 30


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ReferenceModel("gpt2")
    with pytest.raises(ValueError, match="inputs must be a mapping with 'input_ids'"):
        ReferenceModel(tiny_gpt2()).token_losses(torch.zeros(1, 6, dtype=torch.long), torch.zeros(1, 6))
