"""Two gloo processes whose samplers differ: at the epoch's first draw both ranks raise the same error naming the
field and each rank's value, before any data collective, with no hang; alike samplers train on."""

from __future__ import annotations

import numpy as np
import pytest

import hardmine as hm
from tests.distributed.spawn import run_two

CASES = {"seed": ({"seed": 0}, {"seed": 1}, "seed: rank 0 has 0, rank 1 has 1"),
         "batch_size": ({"batch_size": 4}, {"batch_size": 8}, "batch_size: rank 0 has 4, rank 1 has 8"),
         "policy": ({"policy": "importance"}, {"policy": "uniform"}, "policy: rank 0 has 'importance'"),
         "guards": ({"policy": hm.build_policy("importance", guards=[hm.WeightCap()])},
                    {"policy": hm.build_policy("importance")}, "guards: rank 0 has [('weight_cap'"),
         "loaded state": ({"resume": 1}, {"resume": 2}, "consumed batches: rank 0 has 1, rank 1 has 2")}


def _train(rank: int, settings: list[dict]) -> list[float]:
    args = {"batch_size": 4, "policy": "importance", "seed": 0, **settings[rank]}
    resume = args.pop("resume", 0)
    sampler = hm.HardExampleSampler(hm.ScoreMemory(32), **args)
    if resume:  # a state saved after `resume` batches of another run
        other = hm.HardExampleSampler(hm.ScoreMemory(32), 4, policy="importance", seed=0)
        for _, batch in zip(range(resume), other):
            other.weights(batch)
        sampler.load_state_dict(other.state_dict())
    for batch in sampler:
        sampler.update(batch, np.linspace(0.0, 1.0, batch.size))
    return sampler.memory.get("score").tolist()


@pytest.mark.parametrize("case", sorted(CASES))
def test_ranks_that_differ_raise_the_same_error_naming_the_field(tmp_path, case):
    first, second, expected = CASES[case]
    ranks = run_two(tmp_path, _train, [first, second])
    assert not any(r.get("hung") for r in ranks), ranks
    errors = [r.get("error") for r in ranks]
    assert errors[0] is not None and errors[0] == errors[1], ranks
    assert errors[0].startswith("DisagreementError: HardExampleSampler") and expected in errors[0], errors[0]


def test_alike_ranks_agree_and_train(tmp_path):
    ranks = run_two(tmp_path, _train, [{}, {}])
    assert ranks[0]["value"] == ranks[1]["value"]
