"""Every registered policy, in-batch loss and guard builds from its name; errors name the bad part."""

import math

import numpy as np
import pytest
import torch

from hardmine.experiments.spec import parse_spec
from hardmine.experiments.strategies import build_strategy
from hardmine.inbatch.losses import LOSSES
from hardmine.sampling.guards import GUARDS
from hardmine.sampling.policies import POLICIES


@pytest.mark.parametrize("name", sorted(POLICIES) + sorted(LOSSES))
def test_every_registered_strategy_builds_by_name(name):
    strategy = build_strategy(parse_spec(name), class_counts=[50, 5, 1])
    assert strategy.label == name
    assert (strategy.loss_mean is not None) == (name in LOSSES)


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_every_guard_builds_on_a_policy_and_on_a_loss(guard):
    for base in ("importance", "ohem"):
        if base == "ohem" and guard == "class_balance":  # the loss is then sampled by "class_balanced"
            strategy = build_strategy(parse_spec(f"{base}+{guard}"))
            assert strategy.policy.name == "class_balanced" and strategy.guards == ()
            continue
        if base == "ohem" and not POLICIES["uniform"].affected_by(GUARDS[guard]):  # a loss is sampled by "uniform"
            with pytest.raises(ValueError, match=f"{guard} has no effect on the 'uniform' policy"):
                build_strategy(parse_spec(f"{base}+{guard}"))
            continue
        strategy = build_strategy(parse_spec(f"{base}+{guard}"))
        assert [type(g).name for g in strategy.guards] == [guard]
        assert list(strategy.policy.guards) == list(strategy.guards)


def test_parameters_reach_the_objects():
    strategy = build_strategy(parse_spec("importance:alpha=0.5,normalize=none+noise_guard:min_visits=2"))
    assert strategy.policy.normalize == "none"  # text default: "none" stays text
    assert strategy.policy.value("alpha") == 0.5
    assert strategy.guards[0].min_visits == 2
    focal = build_strategy(parse_spec("focal:gamma=1,alpha=none"))
    assert focal.loss_mean.gamma == 1.0 and focal.loss_mean.alpha is None


def test_ohem_selection_weights_keep_the_hardest_clean_samples():
    strategy = build_strategy(parse_spec("ohem:keep=0.25"))
    assert strategy.selects and not build_strategy(parse_spec("focal")).selects
    logits, targets = torch.randn(16, 3), torch.randint(0, 3, (16,))
    loss = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    weights = strategy.selection_weights(logits, targets)
    assert set(weights.tolist()) == {0.0, 1.0} and int(weights.sum()) == 4
    assert set(torch.flatten(torch.nonzero(weights)).tolist()) == set(loss.topk(4).indices.tolist())
    clean = torch.ones(16, dtype=torch.bool)
    clean[loss.argmax()] = False  # the hardest is a noise suspect: OHEM picks among the others
    weights = strategy.selection_weights(logits, targets, clean)
    assert weights[loss.argmax()] == 0 and int(weights.sum()) == 4  # 0.25 of the 15 clean, rounded
    with pytest.raises(ValueError, match="does not select"):
        build_strategy(parse_spec("focal")).selection_weights(logits, targets)


@pytest.mark.parametrize("text, message", [
    ("nonsense", "unknown strategy 'nonsense'; policies: .*'uniform'"),
    ("importance:alhpa=1", "unknown parameter 'alhpa' for strategy 'importance'; it takes .*'alpha'"),
    ("ohem+noise_gard", "unknown guard 'noise_gard'"),
    ("ohem+noise_guard:method=magic", "guard 'noise_guard': method must be one of"),
    ("importance:mix=2", "strategy 'importance': mix must be in"),
    ("misclassified:memory=true", "unknown parameter 'memory'"),
])
def test_bad_strategies_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        build_strategy(parse_spec(text))


def test_a_loss_built_from_class_counts_gets_them_and_needs_them():
    strategy = build_strategy(parse_spec("logit_adjusted:tau=0.5"), class_counts=[90, 9, 1])
    assert strategy.loss_mean.tau == 0.5 and strategy.loss_mean.counts.tolist() == [90, 9, 1]
    assert strategy.loss_none.reduction == "none" and strategy.policy.name == "uniform"
    weighted = build_strategy(parse_spec("class_weighted"), class_counts=[90, 9, 1])
    logits, targets = torch.zeros(3, 3), torch.tensor([0, 1, 2])
    weights = torch.tensor([100 / (3 * 90), 100 / (3 * 9), 100 / (3 * 1)])  # N / (C n_c): mean 1 over the data
    assert torch.allclose(weighted.loss_mean(logits, targets), (math.log(3) * weights).mean())
    with pytest.raises(ValueError, match="strategy 'class_weighted' needs the training class counts"):
        build_strategy(parse_spec("class_weighted"))
    with pytest.raises(ValueError, match="strategy 'logit_adjusted': tau must be a finite number >= 0, got -1"):
        build_strategy(parse_spec("logit_adjusted:tau=-1"), class_counts=[1, 2])
    with pytest.raises(ValueError, match="strategy 'logit_adjusted': class_counts must be >= 0"):
        build_strategy(parse_spec("logit_adjusted"), class_counts=[1, -2])
    with pytest.raises(ValueError, match="unknown parameter 'class_counts' for strategy 'class_weighted'"):
        build_strategy(parse_spec("class_weighted:class_counts=3"), class_counts=[1, 2])
    assert build_strategy(parse_spec("ohem"), class_counts=[1, 2]).loss_mean is not None  # ignored by the others


def test_an_in_batch_loss_with_class_balance_is_sampled_class_balanced():
    strategy = build_strategy(parse_spec("ohem:keep=0.5+class_balance:power=0.5+noise_guard"))
    assert strategy.policy.name == "class_balanced" and strategy.policy.power == 0.5
    assert [g.name for g in strategy.guards] == ["noise_guard"] == [g.name for g in strategy.policy.guards]
    assert strategy.selects
    with pytest.raises(ValueError, match="'logit_adjusted' already balances the classes"):
        build_strategy(parse_spec("logit_adjusted+class_balance"), class_counts=[3, 1])


def test_suspects_skip_the_guards_that_do_not_look_for_them():
    strategy = build_strategy(parse_spec("importance+class_balance+weight_cap"))
    assert strategy.suspects() is None  # was: "zero-dimensional arrays cannot be concatenated"
    noisy = build_strategy(parse_spec("importance+class_balance+noise_guard"))
    noisy.guards[1]._state["suspect"] = np.array([False, True, False, True])
    assert noisy.suspects().tolist() == [1, 3] and noisy.suspects().dtype == np.int64
