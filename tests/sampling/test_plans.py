"""Epoch plans: each policy kind supplies the plan of each epoch; the sampler asks no policy what kind it is."""

import ast
from pathlib import Path

import numpy as np
import pytest

import hardmine as hm
from hardmine.sampling.plans import PLANS, CandidateBatches, PriorityDraws, Shape, ShuffledPass, SubsetPass
from hardmine.testing import policy_params

SAMPLER = Path(hm.__file__).parent / "sampling" / "sampler.py"


@pytest.mark.parametrize(("name", "plan"), [("importance", PriorityDraws), ("rank", PriorityDraws),
                                            ("prune_easy", SubsetPass), ("uniform", SubsetPass),
                                            ("selective_backprop", ShuffledPass),
                                            ("online_top_loss", CandidateBatches),
                                            ("rho_loss", CandidateBatches)])
def test_each_kind_supplies_its_plan_and_plain_shuffling_in_warmup(name, plan):
    policy = hm.build_policy(name, warmup=1, **policy_params(name, 30))
    assert policy.epoch_plan(0) is ShuffledPass and policy.epoch_plan(1) is plan
    assert policy.selects(1) == (name in ("selective_backprop", "online_top_loss", "rho_loss"))
    assert not policy.selects(0)


def test_the_sampler_dispatches_on_no_kind_and_no_mode_string():
    tree = ast.parse(SAMPLER.read_text())
    checks = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
              and n.func.id in ("isinstance", "type")]
    assert checks and not [c for c in checks if "Policy" in c], checks  # memory, drop_last, ... only
    source = SAMPLER.read_text()
    assert '"priority"' not in source and '"candidates"' not in source and '"subset"' not in source


def test_a_plan_rebuilt_from_its_saved_state_draws_the_same_batches():
    memory = hm.ScoreMemory(50)
    policy = hm.build_policy("prune_easy", ratio=0.5)
    memory.update(np.arange(50), np.linspace(0.0, 1.0, 50))
    policy.start_epoch(0, memory)
    shape = Shape(batch_size=4, world_size=1, fixed_batches=None, drop_last=False)
    plan = policy.epoch_plan(0).begin(policy, memory, shape, 3, 0)
    again = PLANS[plan.state["mode"]](policy, memory, shape, 3, 0, plan.state)
    first, second = plan.draw(0, plan.num_batches), again.draw(0, again.num_batches)
    kept = plan.state["subset"].size
    assert kept < 50 and plan.num_batches == again.num_batches == -(-kept // 4)
    assert all(np.array_equal(a, b) for a, b in zip(first.indices, second.indices))
