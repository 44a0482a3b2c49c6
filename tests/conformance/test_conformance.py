"""Every registered policy, alone and with each guard, through the public conformance suite
(hardmine.testing): parameter errors, seeding, exact resumption through a checkpoint file, epochs under
DataLoader, state purity; and every guard's refusal by the policies it has no effect on."""

import pytest
import torch

import hardmine as hm
from hardmine import testing
from hardmine.inbatch.losses import LOSSES
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
    class InPlace(torch.nn.Module):
        """Clamps the caller's logits in place."""

        def __init__(self, reduction="mean"):
            super().__init__()
            self.reduction = reduction

        def forward(self, logits, target):
            logits.clamp_(max=1.0)
            loss = torch.nn.functional.cross_entropy(logits, target, reduction=self.reduction)
            return loss

    with pytest.raises(AssertionError, match="changed its input in place"):
        testing.check_inbatch_loss(InPlace)


@pytest.mark.parametrize("name", sorted(GUARDS))
def test_every_guard_passes_check_guard_on_one_policy(name):
    testing.check_guard(guard_for(name), policies=["importance", "topk_fraction"])


def test_the_checks_catch_a_broken_policy():
    class Forgetful(hm.ImportancePolicy):  # no name: not registered
        """Forgets its epoch on load: resumption must fail."""

        def load_state_dict(self, state, **options):
            super().load_state_dict(state, **options)
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
    with pytest.raises(AssertionError, match="nothing was raised"):
        testing.check_parameters(type("Lenient", (hm.PriorityPolicy,), {"__init__": lambda self, **kw: None}))
