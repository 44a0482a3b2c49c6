"""token_losses: transformers' causal-LM loss token by token (the shift, -100 ignored), and its checks."""

import pytest
import torch
from transformers.loss.loss_utils import ForCausalLMLoss

from hardmine.llm import shift_labels, token_losses


def test_the_mean_over_the_mask_is_transformers_causal_lm_loss():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 11, generator=g, requires_grad=True)
    labels = torch.randint(0, 11, (4, 7), generator=g)
    labels[0, 5:] = -100
    labels[2, :3] = -100
    loss, mask = token_losses(logits, labels)
    torch.testing.assert_close(loss.sum() / mask.sum(), ForCausalLMLoss(logits, labels, 11))
    assert torch.equal(mask, shift_labels(labels) != -100) and not mask[:, -1].any()
    assert (loss[~mask] == 0).all()
    loss.sum().backward()
    assert logits.grad[:, -1].abs().sum() == 0  # the last position predicts nothing


def test_without_shift_and_with_another_ignore_index():
    logits = torch.randn(2, 3, 5)
    labels = torch.tensor([[1, 2, 7], [7, 0, 4]])
    loss, mask = token_losses(logits, labels, ignore_index=7, shift=False)
    assert mask.tolist() == [[True, True, False], [False, True, True]]
    expected = torch.nn.functional.cross_entropy(logits[0, 0], torch.tensor(1))
    torch.testing.assert_close(loss[0, 0], expected)


def test_labels_entirely_ignored_give_an_empty_mask_and_zero_losses():
    loss, mask = token_losses(torch.randn(2, 4, 6), torch.full((2, 4), -100))
    assert not mask.any() and (loss == 0).all()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"logits must be \[B, T, V\] and labels \[B, T\]"):
        token_losses(torch.randn(2, 4, 6), torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="labels must hold integer token ids"):
        token_losses(torch.randn(2, 4, 6), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"outside \[0, 6\).*e.g. 9"):
        token_losses(torch.randn(2, 4, 6), torch.tensor([[1, 9, 2, 3], [1, 2, 3, 4]]))
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        token_losses([[0.0]], torch.zeros(1, 1, dtype=torch.long))
