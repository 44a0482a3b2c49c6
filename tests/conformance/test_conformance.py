"""Every registered policy, alone and with each guard, through the public conformance suite
(hardmine.testing): parameter errors, seeding, exact resumption through a checkpoint file, epochs under
DataLoader, state purity; and every guard's refusal by the policies it has no effect on."""

import pytest
import torch

import hardmine as hm
from hardmine import testing
from hardmine.inbatch.losses import LOSSES, InBatchLoss
from hardmine.metric import MINERS, BaseMiner
from hardmine.sampling.guards import GUARDS, NoiseGuard
from hardmine.sampling.policies import POLICIES


def guard_for(name: str) -> hm.guards.Guard:
    return NoiseGuard(min_visits=1) if name == "noise_guard" else GUARDS[name]()


CASES = [(p, None) for p in sorted(POLICIES)] + [
    (p, g) for p in sorted(POLICIES) for g in sorted(GUARDS) if POLICIES[p].affected_by(GUARDS[g])]


def args(policy: str, guard: str | None) -> dict:
    return {"policy": POLICIES[policy], "params": testing.policy_params(policy),
            "guards": [guard_for(guard)] if guard else []}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_unknown_parameters_are_refused_by_name(policy):
    testing.check_parameters(POLICIES[policy], testing.policy_params(policy))


@pytest.mark.parametrize("policy, guard", [(p, g) for g in sorted(GUARDS) for p in sorted(POLICIES)
                                           if not POLICIES[p].affected_by(GUARDS[g])])
def test_a_guard_without_effect_on_a_policy_is_refused(policy, guard):
    with pytest.raises(ValueError, match=f"{guard} has no effect on the '{policy}' policy"):
        hm.build_policy(policy, **testing.policy_params(policy), guards=[guard_for(guard)])


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_guard_state_round_trips_and_bad_config_is_refused(name):
    guard = guard_for(name)
    rebuilt = type(guard).from_state(guard.state_dict())
    assert repr(rebuilt) == repr(guard)
    with pytest.raises(ValueError, match="guard's state"):
        type(guard).from_state({"name": "other"})


@pytest.mark.parametrize("policy, guard", CASES)
def test_same_seed_same_batches_other_seed_other_batches(policy, guard):
    testing.check_seeding(**args(policy, guard))


@pytest.mark.parametrize("policy, guard", CASES)
def test_resume_through_a_checkpoint_continues_exactly(policy, guard):
    testing.check_resume(**args(policy, guard))


@pytest.mark.parametrize("policy, guard", [(p, None) for p in sorted(POLICIES)] + [("importance", "class_balance")])
def test_epochs_end_under_dataloader(policy, guard):
    testing.check_dataloader(**args(policy, guard))


@pytest.mark.parametrize("policy, guard", CASES)
def test_state_dict_is_pure(policy, guard):
    testing.check_purity(**args(policy, guard))


LOSS_PARAMS = {"ohem": {"keep": 0.5}, "class_weighted": {"class_counts": [40, 9, 3, 1]},
               "logit_adjusted": {"class_counts": [40, 9, 3, 1]}}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_in_batch_loss_passes_check_inbatch_loss(name):
    testing.check_inbatch_loss(LOSSES[name], params=LOSS_PARAMS.get(name))


def test_check_inbatch_loss_catches_a_broken_loss():
    class InPlace(InBatchLoss):
        """Clamps the caller's logits in place."""

        selects = False

        def forward(self, logits, target):
            logits.clamp_(max=1.0)
            loss = torch.nn.functional.cross_entropy(logits, target, reduction=self.reduction)
            return loss

    with pytest.raises(AssertionError, match="changed its input in place"):
        testing.check_inbatch_loss(InPlace)


class _Trimmed(InBatchLoss):
    """Cross-entropy of the `keep` highest-loss samples of the batch, 0 elsewhere (a user's trimmed loss)."""

    selects = True

    def __init__(self, keep=3, reduction="mean"):
        super().__init__(reduction)
        self.keep = keep

    def forward(self, logits, target):
        if not bool(torch.isfinite(logits).all()):
            raise ValueError("logits has non-finite values")
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        kept = torch.zeros_like(loss).index_fill(0, loss.detach().topk(self.keep).indices, 1.0) * loss
        return {"none": kept, "sum": kept.sum(), "mean": kept.sum() / self.keep}[self.reduction]


def test_check_inbatch_loss_holds_a_loss_to_its_selects_declaration():
    testing.check_inbatch_loss(_Trimmed)  # declares True, keeps 3 of 12: passes
    lying = type("Lying", (_Trimmed,), {"selects": False})  # drops 9 of 12 but says it keeps every sample
    with pytest.raises(AssertionError, match="declares selects=False but samples .* got no gradient"):
        testing.check_inbatch_loss(lying)
    keeps_all = type("KeepsAll", (_Trimmed,), {})
    with pytest.raises(AssertionError, match="declares selects=True but every sample .* got a gradient"):
        testing.check_inbatch_loss(keeps_all, params={"keep": 12})

    class Plain(torch.nn.Module):  # no declaration
        def __init__(self, reduction="mean"):
            super().__init__()
            self.reduction = reduction

        def forward(self, logits, target):
            return torch.nn.functional.cross_entropy(logits, target, reduction=self.reduction)

    with pytest.raises(AssertionError, match="must declare whether it selects samples"):
        testing.check_inbatch_loss(Plain)


def test_an_in_batch_loss_must_declare_whether_it_selects():
    with pytest.raises(TypeError, match="Undeclared must declare whether it selects samples"):
        type("Undeclared", (InBatchLoss,), {})
    assert {name: LOSSES[name].selects for name in LOSSES} == {
        "ohem": True, "focal": False, "misclassified": False, "class_weighted": False, "logit_adjusted": False}


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_every_guard_passes_check_guard_on_one_policy(name):
    testing.check_guard(guard_for(name), policies=["importance", "topk_fraction"])


def test_the_checks_catch_a_broken_policy():
    class Forgetful(hm.ImportancePolicy):  # no name: not registered
        """Forgets its epoch on load: resumption must fail."""

        def _after_load(self):
            super()._after_load()
            self._state["unseen_score"] = 123.0

    with pytest.raises(AssertionError, match="differs after resuming"):
        testing.check_policy(Forgetful, params={"alpha": 2.0})

    class Counting(hm.ImportancePolicy):
        """Changes its state when asked for it."""

        def state_dict(self):
            self._state["unseen_score"] += 1.0
            return super().state_dict()

    with pytest.raises(AssertionError, match="state_dict\\(\\) changed"):
        testing.check_purity(Counting)
    with pytest.warns(UserWarning, match="overrides load_state_dict: .* skip that override"):
        type("Overriding", (hm.ImportancePolicy,), {"load_state_dict": lambda self, state, **options: None})
    with pytest.raises(AssertionError, match="nothing was raised"):
        testing.check_parameters(type("Lenient", (hm.PriorityPolicy,), {"__init__": lambda self, **kw: None}))


@pytest.mark.parametrize("name", sorted(MINERS))
def test_every_miner_passes_check_miner(name):
    testing.check_miner(MINERS[name])


def _broken_miner(output, base=True):
    """A miner that returns `output` whatever it is given: a BaseMiner subclass, or a plain callable."""
    if not base:
        return lambda *args: output

    class Broken(BaseMiner):
        def mine(self, batch):
            return output

    return Broken


def _t(*values):
    return torch.tensor(values, dtype=torch.int64)


@pytest.mark.parametrize("base", [True, False])
@pytest.mark.parametrize("output, message", [
    ((_t(0, 4), _t(4, 16), _t(1, 2)), r"output\[1\] must index a row of the reference in \[0, 16\).*16"),
    ((_t(-1), _t(4), _t(1)), r"output\[0\] must index an anchor .*-1"),
    ((_t(0, 4), _t(4), _t(1, 2, 3), _t(5)),  # lengths [2, 1, 3, 1]: 4 tensors of a pair miner (by its arity)
     r"must return a tuple of 3 index tensors, got tuple of 4|different lengths \[2, 1\]"),
    ((_t(0, 4), _t(4), _t(1, 2)), r"different lengths \[2, 1, 2\]"),
    ((_t(0), _t(1), _t(2)), r"a positive has another label than its anchor"),
    ((_t(0), _t(0), _t(1)), r"an anchor is its own positive"),
    ((_t(0), _t(4), _t(8)), r"a negative has its anchor's label"),
])
def test_check_miner_refuses_a_broken_miner(output, message, base):
    miner = _broken_miner(output, base)
    with pytest.raises(AssertionError, match=message):
        testing.check_miner(miner)


def test_a_miner_writing_the_old_private_hook_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"Old\._(mine|arity) is deprecated: name it (mine|arity)"):
        class Old(BaseMiner):
            _arity = 3

            def _mine(self, batch):
                return MINERS["batch_hard"]().mine(batch)

    assert Old.arity == 3
    testing.check_miner(Old)
    with pytest.warns(DeprecationWarning):
        class OutOfRange(BaseMiner):
            def _mine(self, batch):
                return _t(0), _t(99), _t(1)
    with pytest.raises(AssertionError, match=r"OutOfRange on a batch: ValueError: OutOfRange.mine output\[1\]"):
        testing.check_miner(OutOfRange)
