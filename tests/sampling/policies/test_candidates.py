"""Candidate-batch selection (online_top_loss, rho_loss): candidate batches, the top and stochastic rules, the
irreducible-loss column, resumption, guards, bad input."""

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import hardmine as hm
from hardmine import HardExampleSampler, ScoreMemory, testing


def rho_sampler(n=20, batch=2, candidates=5, il=None, **params):
    il = np.linspace(0.0, 1.0, n) if il is None else il
    memory = ScoreMemory(n, labels=np.arange(n) % 2)
    policy = hm.build_policy("rho_loss", irreducible_loss=il, candidates=candidates, **params)
    return memory, HardExampleSampler(memory, batch_size=batch, policy=policy, seed=0)


def test_a_candidate_batch_holds_candidates_times_b_distinct_indices_and_b_are_selected():
    _, sampler = rho_sampler(n=50, batch=4, candidates=5)
    assert len(sampler) == 13  # ceil(50 / 4): as many back-propagated samples per epoch as a uniform epoch
    for step, batch in enumerate(sampler):
        b = 4 if step < 12 else 2  # the last batch: 50 - 48
        assert batch.dtype == np.int64 and batch.size == 5 * b and np.unique(batch).size == 5 * b
        sampler.update(batch, testing.fake_loss(batch, step))
        w = sampler.weights(batch).numpy()
        assert (w > 0).sum() == b and set(np.unique(w)) <= {0.0, 1.0}
    assert sampler.stats()["keep_ratio"] == pytest.approx(0.2)


def test_epoch_fraction_shortens_the_epoch():
    memory = ScoreMemory(100)
    policy = hm.build_policy("online_top_loss", candidates=3, epoch_fraction=0.5)
    sampler = HardExampleSampler(memory, 10, policy=policy)
    next(iter(sampler))  # the epoch's length is decided at its start
    assert len(sampler) == 5


def test_rho_keeps_the_top_reducible_loss_with_ties_broken_by_index():
    n = 20
    il = np.zeros(n)
    il[[3, 7, 11]] = 2.0  # hand-made reference losses
    _, sampler = rho_sampler(n=n, batch=2, candidates=5, il=il)
    batch = next(iter(sampler))
    reducible = {i: 1.0 for i in batch}  # every candidate ties at 1 ...
    hard = sorted(batch)[-3:]  # ... except the three with the largest indices: 5.0, but 3 of them
    for i in hard:
        reducible[i] = 5.0
    losses = np.array([reducible[i] + il[i] for i in batch])
    sampler.update(batch, losses)
    kept = set(batch[sampler.weights(batch).numpy() > 0])
    assert kept == set(hard[:2])  # top 2 of loss minus reference; the tie at 5.0 goes to the smaller indices


def test_online_top_loss_ignores_the_reference_and_keeps_the_top_loss():
    memory = ScoreMemory(30)
    sampler = HardExampleSampler(memory, 3, policy=hm.build_policy("online_top_loss", candidates=4), seed=1)
    batch = next(iter(sampler))
    losses = np.where(batch % 2 == 0, 1.0, 0.5)  # ties everywhere: even indices first, then by index
    sampler.update(batch, losses)
    kept = batch[sampler.weights(batch).numpy() > 0]
    assert sorted(kept) == sorted(batch[batch % 2 == 0])[:3]


def test_the_stochastic_rule_draws_with_softmax_probabilities():
    policy = hm.build_policy("online_top_loss", candidates=5, rule="stochastic", temperature=0.5, seed=3)
    scores = np.array([0.1, 0.4, 0.5, 0.9, 1.3])
    indices = np.arange(5, dtype=np.int64)
    probabilities = np.exp(scores / 0.5) / np.exp(scores / 0.5).sum()
    draws = 20000
    counts = np.zeros(5)
    for _ in range(draws):
        weights = policy.select(scores, indices)
        assert weights.sum() == 1.0
        counts += weights
    _, p_value = chisquare(counts, probabilities * draws)
    assert p_value > 1e-3, (counts, probabilities * draws)
    greedy = hm.build_policy("online_top_loss", candidates=5)
    assert greedy.select(scores, indices).tolist() == [0, 0, 0, 0, 1]


def test_the_stochastic_rule_keeps_exactly_b_and_is_seeded():
    a = hm.build_policy("rho_loss", candidates=4, rule="stochastic", seed=5)
    b = hm.build_policy("rho_loss", candidates=4, rule="stochastic", seed=5)
    losses, idx = np.linspace(0, 1, 16), np.arange(16, dtype=np.int64)
    a.attach(ScoreMemory(16)), b.attach(ScoreMemory(16))
    for memory_policy in (a, b):
        memory_policy._memory.set("irreducible_loss", np.zeros(16))
    wa, wb = a.select(losses, idx), b.select(losses, idx)
    assert np.array_equal(wa, wb) and wa.sum() == 4


@pytest.mark.parametrize("params", [{"rule": "stochastic", "temperature": 0.3},
                                    {"guards": [hm.NoiseGuard(min_visits=1)]}])
def test_exact_resume_mid_epoch_gives_the_same_batches_and_selections(params):
    def factory():
        guards = [type(g)(**g.get_params()) for g in params.get("guards", [])]
        policy = hm.build_policy("rho_loss", irreducible_loss=testing.policy_params("rho_loss")["irreducible_loss"],
                                 candidates=3, **{**params, "guards": guards})
        memory = ScoreMemory(testing.NUM_SAMPLES, labels=testing.LABELS)
        return memory, HardExampleSampler(memory, testing.BATCH_SIZE, policy=policy, seed=2)

    def steps(_memory, sampler, count, start):
        out = []
        while len(out) < count:
            for batch in sampler:
                sampler.update(batch, testing.fake_loss(batch, start + len(out)))
                out.append((batch.copy(), sampler.weights(batch).numpy()))
                if len(out) == count:
                    break
        return out

    reference = steps(*factory(), 20, 0)
    memory, sampler = factory()
    first = steps(memory, sampler, 7, 0)  # an epoch is 11 steps: stop inside the first
    state = {"memory": memory.state_dict(), "sampler": sampler.state_dict()}
    memory2, sampler2 = factory()
    memory2.load_state_dict(state["memory"])
    sampler2.load_state_dict(state["sampler"])
    rest = steps(memory2, sampler2, 13, 7)
    for (b1, w1), (b2, w2) in zip(reference, first + rest):
        assert np.array_equal(b1, b2) and np.array_equal(w1, w2)


def test_irreducible_losses_live_in_a_checkpointed_memory_column():
    il = np.linspace(0.5, 1.0, 20)
    memory, _ = rho_sampler(il=il)
    np.testing.assert_allclose(memory.get("irreducible_loss"), il.astype(np.float32))
    state = memory.state_dict()
    assert "irreducible_loss" in state
    fresh = ScoreMemory(20, labels=np.arange(20) % 2)
    fresh.declare(hm.IRREDUCIBLE_LOSS)
    fresh.load_state_dict(state)
    np.testing.assert_array_equal(fresh.get("irreducible_loss"), memory.get("irreducible_loss"))
    # a policy built without the array reads the column the memory holds (e.g. after loading a checkpoint)
    sampler2 = HardExampleSampler(fresh, 2, policy=hm.build_policy("rho_loss", candidates=5), seed=0)
    batch = next(iter(sampler2))
    sampler2.update(batch, np.ones(batch.size))
    kept = batch[sampler2.weights(batch).numpy() > 0]
    assert sorted(kept) == sorted(batch)[:2]  # equal losses: the smallest reference losses are most reducible


def test_warmup_epochs_draw_plain_batches():
    _, sampler = rho_sampler(n=20, batch=4, candidates=5, warmup=1)
    batch = next(iter(sampler))
    assert batch.size == 4
    sampler.update(batch, np.ones(4))
    assert sampler.weights(batch).tolist() == [1.0] * 4


def test_a_noise_guard_keeps_a_persistent_suspect_out_of_the_selection():
    n = 40
    _, sampler = rho_sampler(n=n, batch=4, candidates=5, il=np.full(n, 0.5),
                                  guards=[hm.NoiseGuard(min_visits=1)])
    rng = np.random.default_rng(0)
    chosen_in_epoch = [0, 0]
    for epoch in range(2):
        sampler.set_epoch(epoch)
        for batch in sampler:
            losses = np.where(batch == 0, 10.0, rng.random(batch.size) * 0.2)  # sample 0 looks mislabeled
            sampler.update(batch, losses)
            w = sampler.weights(batch).numpy()
            chosen_in_epoch[epoch] += int(w[batch == 0].sum())
    assert chosen_in_epoch[0] >= 1  # without suspects yet, its loss wins whenever it is a candidate
    assert chosen_in_epoch[1] == 0 and 0 in sampler.policy.suspects()


def test_bad_input_is_refused_before_anything_changes():
    with pytest.raises(ValueError, match="candidates must be >= 1"):
        hm.build_policy("online_top_loss", candidates=0)
    with pytest.raises(ValueError, match="temperature"):
        hm.build_policy("online_top_loss", rule="stochastic", temperature=0.0)
    with pytest.raises(ValueError, match="rule must be one of"):
        hm.build_policy("rho_loss", rule="softmax")
    with pytest.raises(ValueError, match="irreducible_loss has 1 non-finite"):
        hm.build_policy("rho_loss", irreducible_loss=[0.1, float("nan"), 0.3])
    with pytest.raises(ValueError, match="irreducible_loss must be non-negative"):
        hm.build_policy("rho_loss", irreducible_loss=[0.1, -0.2, 0.3])
    with pytest.raises(ValueError, match="irreducible_loss must be 1-D"):
        hm.build_policy("rho_loss", irreducible_loss=np.zeros((3, 2)))
    memory = ScoreMemory(10)
    with pytest.raises(ValueError, match="irreducible_loss has length 3 but the memory holds 10"):
        HardExampleSampler(memory, 2, policy=hm.build_policy("rho_loss", irreducible_loss=[0.1, 0.2, 0.3]))
    assert "irreducible_loss" not in memory.statistics
    with pytest.raises(ValueError, match="irreducible_loss column is missing"):
        next(iter(HardExampleSampler(memory, 2, policy=hm.build_policy("rho_loss"))))


def test_update_with_indices_that_are_not_the_candidate_batch_is_refused():
    memory, sampler = rho_sampler()
    batch = next(iter(sampler))
    before = memory.state_dict()
    for wrong in (batch[:2], batch[::-1].copy()):
        with pytest.raises(ValueError, match="not a candidate batch this sampler yielded"):
            sampler.update(wrong, np.ones(wrong.size))
    after = memory.state_dict()
    assert all(np.array_equal(before[k].numpy(), after[k].numpy(), equal_nan=True)
               if isinstance(before[k], torch.Tensor) else before[k] == after[k] for k in before)
    with pytest.raises(ValueError, match="call sampler.update"):
        sampler.weights(batch)  # before the selection
    sampler.update(batch, np.ones(batch.size))  # the whole batch is accepted
    assert sampler.weights(batch).sum() == 2


def test_the_conformance_suite_passes_for_the_candidate_policies():
    for name in ("online_top_loss", "rho_loss"):
        testing.check_policy(hm.POLICIES[name], params=testing.policy_params(name))
        testing.check_policy(hm.POLICIES[name], params={**testing.policy_params(name),
                                                        "rule": "stochastic"})
