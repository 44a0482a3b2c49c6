import math

import pytest
import torch

from hardmine.inbatch.select import SELECTORS, Selection, Stochastic, Threshold, TopK, true_class_probability


def test_registry_names():
    assert SELECTORS == {"top_k": TopK, "threshold": Threshold, "stochastic": Stochastic}
    assert len(SELECTORS["top_k"](k=3)(torch.arange(10.0))) == 3


@pytest.mark.parametrize("seed", range(5))
def test_top_k_keeps_exactly_the_k_largest(seed):
    scores = torch.randn(7, 13, generator=torch.Generator().manual_seed(seed))
    sel = TopK(20)(scores)
    expected = torch.sort(torch.topk(scores.reshape(-1), 20).indices).values
    assert torch.equal(sel.index, expected)
    assert torch.equal(sel.weight, torch.ones(20))
    assert sel.shape == scores.shape
    assert scores.reshape(-1)[sel.index].min() > scores.reshape(-1)[~sel.mask().reshape(-1)].max()


def test_top_k_ties_keep_lowest_positions():
    sel = TopK(3)(torch.tensor([1.0, 3.0, 2.0, 3.0, 2.0, 2.0]))
    assert sel.index.tolist() == [1, 2, 3]
    assert TopK(2)(torch.full((5,), 7.0)).index.tolist() == [0, 1]


def test_top_k_fraction_rounds_up_and_respects_mask():
    scores = torch.tensor([9.0, 1.0, 5.0, 8.0, 2.0, 7.0])
    mask = torch.tensor([False, True, True, True, True, True])
    assert TopK(0.5)(scores).index.tolist() == [0, 3, 5]
    assert TopK(0.3)(scores, mask).index.tolist() == [3, 5]          # ceil(0.3 * 5) = 2, never the masked 9
    assert TopK(6)(scores, mask).index.tolist() == [1, 2, 3, 4, 5]   # a count is capped at the valid elements
    assert len(TopK(0)(scores)) == 0


def test_top_k_bad_input():
    with pytest.raises(ValueError, match="k=7 is larger than the number of scores"):
        TopK(7)(torch.zeros(6))
    with pytest.raises(ValueError, match="k must be in"):
        TopK(1.5)
    with pytest.raises(ValueError, match="k must be >= 0"):
        TopK(-1)
    with pytest.raises(TypeError, match="k must be an integer"):
        TopK(True)
    with pytest.raises(ValueError, match="non-finite.*position 2"):
        TopK(1)(torch.tensor([1.0, 2.0, math.nan]))
    with pytest.raises(ValueError, match="empty"):
        TopK(1)(torch.zeros(0))
    with pytest.raises(TypeError, match="floating point"):
        TopK(1)(torch.arange(4))
    with pytest.raises(ValueError, match="mask has shape"):
        TopK(1)(torch.zeros(4), torch.ones(3, dtype=torch.bool))
    with pytest.raises(TypeError, match="mask must be a boolean"):
        TopK(1)(torch.zeros(4), torch.ones(4))


def test_nan_where_masked_out_is_allowed():
    scores = torch.tensor([1.0, math.nan, 3.0])
    assert TopK(1)(scores, ~torch.isnan(scores)).index.tolist() == [2]


def test_threshold_keeps_all_above_but_at_least_min_kept():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.3])
    assert Threshold(0.4)(scores).index.tolist() == [1, 2, 3]
    assert Threshold(0.5)(scores).index.tolist() == [1, 3]            # strictly above
    assert Threshold(0.8, min_kept=3)(scores).index.tolist() == [1, 2, 3]
    assert Threshold(0.1, min_kept=2, keep="below")(scores).index.tolist() == [0, 4]
    assert len(Threshold(5.0, min_kept=100)(scores)) == 5             # capped at the number of elements
    mask = torch.tensor([True, False, True, True, True])
    assert Threshold(0.95, min_kept=2)(scores, mask).index.tolist() == [2, 3]


@pytest.mark.parametrize("seed", range(3))
def test_threshold_min_kept_property(seed):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(500, generator=gen)
    for value in (0.2, 0.9, 0.999):
        for min_kept in (0, 10, 300):
            sel = Threshold(value, min_kept)(scores)
            assert len(sel) == max(int((scores > value).sum()), min_kept)


def test_threshold_segmentation_variant_with_ignore_index():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 6, 5, generator=gen)
    target = torch.randint(0, 4, (2, 6, 5), generator=gen)
    target[0, :2] = 255
    prob, valid = true_class_probability(logits, target, ignore_index=255)
    expected = torch.softmax(logits, 1).gather(1, target.clamp_max(3)[:, None]).squeeze(1)
    assert torch.allclose(prob[valid], expected[valid])
    assert bool((prob[~valid] == 1).all()) and int((~valid).sum()) == 10
    many = Threshold(0.3, min_kept=5, keep="below")(prob, valid).mask()
    assert int((valid & (prob < 0.3)).sum()) > 5 and torch.equal(many, valid & (prob < 0.3))
    few = Threshold(0.0, min_kept=5, keep="below")(prob, valid).mask()      # nothing below 0: the 5 lowest
    lowest = torch.sort(prob[valid]).values[:5]
    assert int(few.sum()) == 5 and not bool((few & ~valid).any())
    assert torch.equal(torch.sort(prob[few]).values, lowest)


def test_true_class_probability_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        true_class_probability(torch.zeros(2, 3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="outside"):
        true_class_probability(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_selectors_do_not_change_inputs():
    scores = torch.randn(50)
    before = scores.clone()
    mask = torch.rand(50) > 0.3
    mask_before = mask.clone()
    for selector in (TopK(5), Threshold(0.0, 3), Stochastic(seed=0)):
        selector(scores, mask)
    assert torch.equal(scores, before) and torch.equal(mask, mask_before)


def test_stochastic_is_seeded_and_keeps_the_hardest():
    scores = torch.rand(200, generator=torch.Generator().manual_seed(1))
    a = Stochastic(beta=2.0, seed=7)(scores)
    b = Stochastic(beta=2.0, seed=torch.Generator().manual_seed(7))(scores)
    assert torch.equal(a.index, b.index)
    assert int(scores.argmax()) in a.index.tolist()
    assert len(Stochastic(beta=0.0)(scores)) == 200


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_stochastic_keep_rate_matches_percentile_power(beta):
    # uniform percentiles p keep with probability p**beta: on average 1 / (beta + 1)
    sel = Stochastic(beta=beta, history_size=20000, seed=0)
    scores = torch.randperm(20000, generator=torch.Generator().manual_seed(0)).double()
    assert abs(len(sel(scores)) / 20000 - 1 / (beta + 1)) < 0.02


def test_stochastic_history_ranks_against_past_batches():
    sel = Stochastic(beta=50.0, history_size=100, seed=0)
    sel(torch.full((100,), 10.0))                      # a history of hard batches
    assert len(sel(torch.ones(20))) == 0               # percentile 20/100 -> kept with probability 0.2**50


def test_stochastic_state_round_trip():
    gen = torch.Generator().manual_seed(3)
    batches = [torch.rand(64, generator=gen) for _ in range(6)]
    sel = Stochastic(beta=1.5, history_size=100, seed=11)
    for scores in batches[:3]:
        sel(scores)
    state = sel.state_dict()
    first = [sel(scores).index for scores in batches[3:]]
    other = Stochastic(beta=1.5, history_size=100, seed=999)
    other.load_state_dict(state)
    second = [other(scores).index for scores in batches[3:]]
    assert all(torch.equal(x, y) for x, y in zip(first, second))
    with pytest.raises(ValueError, match="missing|state_version"):
        other.load_state_dict({"history": state["history"]})
    with pytest.raises(ValueError, match="history_size"):
        Stochastic(history_size=10).load_state_dict(state)


def test_stochastic_bad_arguments():
    with pytest.raises(ValueError, match="beta"):
        Stochastic(beta=-1.0)
    with pytest.raises(TypeError, match="seed"):
        Stochastic(seed="a")
    with pytest.raises(ValueError, match="history_size"):
        Stochastic(history_size=0)


def test_selection_dense_views_and_checks():
    sel = Selection(torch.tensor([1, 4]), torch.tensor([2.0, 0.5]), torch.Size([2, 3]))
    assert sel.mask().tolist() == [[False, True, False], [False, True, False]]
    assert sel.dense_weight().tolist() == [[0.0, 2.0, 0.0], [0.0, 0.5, 0.0]]
    with pytest.raises(ValueError, match="out of range"):
        Selection(torch.tensor([6]), torch.ones(1), torch.Size([2, 3]))
    with pytest.raises(TypeError, match="int64"):
        Selection(torch.tensor([1.0]), torch.ones(1), torch.Size([2, 3]))
