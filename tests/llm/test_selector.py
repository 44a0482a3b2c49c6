"""TokenSelector: the kept tokens are exactly the top fraction of the valid ones by loss or by loss minus the
reference's (checked against brute force, with padding and -100 labels), per batch or per sequence; warm-up;
Rho-1's normalisation; no NaN when nothing is selectable; state round trip; bad input named."""

import math

import pytest
import torch

from hardmine.llm import TokenSelector, token_losses


def brute_force(score, mask, keep, per_row):
    """Bool [B, T]: per group (the batch or each row), the ceil(keep * n) valid tokens of highest score, ties to
    the earlier position (row-major), by sorting a Python list."""
    chosen = torch.zeros_like(mask)
    groups = [[(b, t) for b in range(mask.shape[0]) for t in range(mask.shape[1])]] if not per_row else \
        [[(b, t) for t in range(mask.shape[1])] for b in range(mask.shape[0])]
    for group in groups:
        valid = [(float(score[b, t]), b, t) for b, t in group if mask[b, t]]
        valid.sort(key=lambda v: (-v[0], v[1], v[2]))
        for _, b, t in valid[: math.ceil(keep * len(valid) - 1e-9)]:
            chosen[b, t] = True
    return chosen


def batch(seed, vocab=13, B=5, T=9):
    """Token losses of random logits against labels with right padding (-100) and a -100 prompt, a reference's
    losses (random, also at ignored positions), and repeated values to exercise ties."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, vocab, generator=g)
    labels = torch.randint(0, vocab, (B, T), generator=g)
    for b in range(B):
        labels[b, int(torch.randint(2, T + 1, (1,), generator=g)):] = -100  # padding
        labels[b, : int(torch.randint(0, 3, (1,), generator=g))] = -100  # a prompt not trained on
    labels[1] = -100  # a sequence with no label at all
    loss, mask = token_losses(logits, labels)
    loss[0, :3] = 1.0  # ties
    reference = torch.rand(B, T, generator=g) * 3
    reference[0, :3] = 0.5
    return loss, mask, reference


@pytest.mark.parametrize("keep", [0.1, 0.25, 1 / 3, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("scope", ["batch", "sequence"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_excess_loss_keeps_exactly_the_top_fraction_of_valid_tokens_by_loss_minus_reference(keep, scope, seed):
    loss, mask, reference = batch(seed)
    weights = TokenSelector(keep=keep, rule="excess_loss", scope=scope)(loss, mask, reference)
    expected = brute_force(loss - reference, mask, keep, per_row=scope == "sequence")
    assert torch.equal(weights.bool(), expected)
    assert set(weights.unique().tolist()) <= {0.0, 1.0} and not weights[~mask].any()
    if scope == "batch":
        assert int(weights.sum()) == math.ceil(keep * int(mask.sum()) - 1e-9)


@pytest.mark.parametrize("scope", ["batch", "sequence"])
def test_top_loss_keeps_the_highest_losses(scope):
    loss, mask, _ = batch(3)
    weights = TokenSelector(keep=0.4, rule="top_loss", scope=scope)(loss, mask)
    assert torch.equal(weights.bool(), brute_force(loss, mask, 0.4, per_row=scope == "sequence"))


def test_warmup_keeps_every_valid_token_then_selects():
    loss, mask, reference = batch(4)
    selector = TokenSelector(keep=0.3, rule="excess_loss", warmup=2)
    assert torch.equal(selector(loss, mask, reference).bool(), mask)
    assert torch.equal(selector(loss, mask, reference).bool(), mask)
    assert int(selector(loss, mask, reference).sum()) == math.ceil(0.3 * int(mask.sum()))
    assert selector.steps == 3


def test_reduce_normalises_by_the_kept_tokens_and_gives_zero_not_nan_when_none_is_selectable():
    loss, mask, reference = batch(5)
    loss.requires_grad_(True)
    weights = TokenSelector(keep=0.5, rule="excess_loss")(loss.detach(), mask, reference)
    value = TokenSelector.reduce(loss, weights)
    torch.testing.assert_close(value, loss[weights.bool()].mean())
    value.backward()
    assert torch.equal(loss.grad != 0, weights.bool())  # the gradient reaches only the kept tokens
    rows = torch.tensor([2.0, 0.0, 1.0, 1.0, 1.0])
    torch.testing.assert_close(TokenSelector.reduce(loss, weights, rows),
                               (loss * weights * rows[:, None]).sum() / weights.sum())
    empty = torch.zeros_like(mask)
    nothing = TokenSelector(keep=0.5, rule="excess_loss")(loss.detach(), empty, reference)
    assert not nothing.any()
    zero = TokenSelector.reduce(loss, nothing)
    assert zero.item() == 0.0 and torch.isfinite(zero)


def test_a_nan_loss_on_padding_is_ignored_but_refused_on_a_valid_token():
    loss, mask, reference = batch(6)
    loss[~mask] = torch.nan
    TokenSelector(keep=0.5, rule="top_loss")(loss, mask)
    loss[mask.nonzero()[0].tolist()] = torch.nan
    with pytest.raises(ValueError, match="must be finite on the tokens the mask keeps"):
        TokenSelector(keep=0.5, rule="top_loss")(loss, mask)


def test_state_round_trips_and_a_different_configuration_is_refused():
    loss, mask, reference = batch(7)
    selector = TokenSelector(keep=0.5, rule="excess_loss", warmup=3)
    selector(loss, mask, reference)
    other = TokenSelector(keep=0.5, rule="excess_loss", warmup=3)
    other.load_state_dict(selector.state_dict())
    assert other.state_dict() == selector.state_dict() and other.steps == 1
    different = TokenSelector(keep=0.2, rule="excess_loss", warmup=3)
    with pytest.raises(ValueError, match="keep: saved 0.5, constructed with 0.2"):
        different.load_state_dict(selector.state_dict())
    assert different.steps == 0
    different.load_state_dict(selector.state_dict(), use_saved_config=True)
    assert different.keep == 0.5
    bad = {**selector.state_dict(), "selected_tokens": 10**9}
    with pytest.raises(ValueError, match="selected_tokens"):
        other.load_state_dict(bad)
    with pytest.raises(ValueError, match="steps"):
        other.load_state_dict({**selector.state_dict(), "steps": -1})


@pytest.mark.parametrize("keep", [0, -0.1, 1.5, float("nan")])
def test_keep_outside_zero_one_is_refused(keep):
    with pytest.raises(ValueError, match="keep must be in"):
        TokenSelector(keep=keep)


def test_bad_arguments_are_named():
    loss, mask, reference = batch(8)
    with pytest.raises(ValueError, match="rule must be one of"):
        TokenSelector(0.5, rule="top")
    with pytest.raises(ValueError, match="scope must be one of"):
        TokenSelector(0.5, scope="row")
    with pytest.raises(TypeError, match="warmup must be an integer"):
        TokenSelector(0.5, warmup=1.5)
    with pytest.raises(ValueError, match="mask must be a bool .* of token_loss's shape"):
        TokenSelector(0.5, "top_loss")(loss, mask[:, :-1])
    with pytest.raises(ValueError, match="reference_loss must be a tensor of token_loss's shape"):
        TokenSelector(0.5)(loss, mask, reference[:-1])
    with pytest.raises(ValueError, match="token_loss must be a float tensor"):
        TokenSelector(0.5, "top_loss")(loss[0], mask[0])
    with pytest.raises(ValueError, match="needs reference_loss"):
        TokenSelector(0.5, "excess_loss")(loss, mask)
    with pytest.raises(ValueError, match="takes no reference_loss"):
        TokenSelector(0.5, "top_loss")(loss, mask, reference)
