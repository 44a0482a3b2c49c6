"""What a subclass inherits, and what the sampler's per-step shortcuts must not assume about user code: a class flag
that vouches for a method (monotone priorities, weights by rows, valid selected weights) does not pass to a
subclass that overrides the method; user hooks keep their documented signatures; a batch policy whose select
raises changes nothing; the loop may change its batch or weights in place without corrupting the sampler."""

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine import BatchPolicy, HardExampleSampler, ImportancePolicy, ScoreMemory, SelectiveBackpropPolicy


class Bump(ImportancePolicy):  # not monotone: a huge priority around difficulty 5 only
    def priority(self, difficulty):
        return np.where(np.abs(difficulty - 5.0) < 1.0, 1e39, 1.0)


class LossWeighted(SelectiveBackpropPolicy):  # its weights may be negative
    def select(self, losses, indices):
        return losses - losses.mean()


class RowsFromMixin:
    def weights(self, probabilities, num_samples):
        assert probabilities.ndim == 1, "called with a chunk"
        return np.ones_like(probabilities)


class Mixed(RowsFromMixin, ImportancePolicy):
    pass


def test_flags_that_vouch_for_a_method_do_not_pass_to_a_subclass_that_overrides_it():
    assert ImportancePolicy.monotone and not Bump.monotone
    assert SelectiveBackpropPolicy.valid_weights and not LossWeighted.valid_weights
    assert ImportancePolicy.weights_rows and not Mixed.weights_rows

    class Declared(Bump):
        monotone = True  # declared again: taken at its word
    assert Declared.monotone


def test_a_subclass_priority_that_overflows_between_the_extremes_is_refused_at_update():
    memory = ScoreMemory(64)
    sampler = HardExampleSampler(memory, batch_size=4, policy=Bump(), seed=0, chunk=2)
    batch = next(iter(sampler))
    with pytest.raises(ValueError, match="per_sample_loss would give sample .* a priority of 1e\\+39"):
        sampler.update(batch, np.array([0.0, 5.0, 5.0, 10.0]))
    assert memory.get("seen").sum() == 0 and memory.queued == 0


def test_a_subclass_select_s_negative_weights_are_refused_by_reduce():
    sampler = HardExampleSampler(ScoreMemory(64), batch_size=4, policy=LossWeighted(), seed=0)
    batch = next(iter(sampler))
    sampler.update(batch, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="finite and non-negative"):
        hm.reduce(torch.rand(4), sampler.weights(batch))


def test_a_mixin_s_weights_are_called_batch_by_batch():
    sampler = HardExampleSampler(ScoreMemory(64), batch_size=4, policy=Mixed(), seed=0, chunk=4)
    assert len(list(sampler)) == 16


def test_a_check_scores_override_with_the_documented_signature_is_called():
    seen = []

    class Checked(ImportancePolicy):
        def check_scores(self, name, indices, values, memory):
            seen.append(values.copy())
            super().check_scores(name, indices, values, memory)

    sampler = HardExampleSampler(ScoreMemory(64), batch_size=4, policy=Checked(), seed=0)
    batch = next(iter(sampler))
    sampler.update(batch, np.arange(4.0))
    np.testing.assert_array_equal(seen[0], np.arange(4.0))


def test_a_batch_policy_whose_select_raises_changes_nothing():
    class NonNegative(BatchPolicy):
        def select(self, losses, indices):
            if (losses < 0).any():
                raise ValueError("losses must be >= 0")
            return np.ones_like(losses)

    memory = ScoreMemory(64)
    sampler = HardExampleSampler(memory, batch_size=4, policy=NonNegative(), seed=0, chunk=4)
    batch = next(iter(sampler))
    with pytest.raises(ValueError, match="losses must be >= 0"):
        sampler.update(batch, np.array([1.0, -2.0, 3.0, 4.0]))
    sampler.flush()
    assert memory.get("seen").sum() == 0 and sampler.position == 0


def test_a_check_that_reads_the_memory_between_staging_and_keeping_a_batch_keeps_its_scores_in_place():
    """Reading the memory writes the buffered updates; the batch being checked must still land where it belongs."""
    class Reading(ImportancePolicy):
        def check_scores(self, name, indices, values, memory):
            memory.get("seen", indices)  # flushes the buffer
            super().check_scores(name, indices, values, memory)

    memory, reference = ScoreMemory(64), ScoreMemory(64)
    sampler = HardExampleSampler(memory, batch_size=4, policy=Reading(), seed=0, chunk=4)
    rng = np.random.default_rng(0)
    for batch in list(sampler)[:9]:
        losses = rng.random(4)
        sampler.update(batch, losses)
        reference.update(batch, losses)
    for name in ("score", "seen", "last_step"):
        np.testing.assert_array_equal(memory.get(name), reference.get(name))


def test_weights_changed_in_place_are_reduced_as_they_are_now():
    sampler = HardExampleSampler(ScoreMemory(64), batch_size=4, policy="uniform", seed=0)
    batch = next(iter(sampler))
    loss = torch.tensor([1.0, 2.0, 3.0, 4.0])
    w = sampler.weights(batch)
    w.mul_(0.5)
    torch.testing.assert_close(hm.reduce(loss, w), (loss * w).mean())
    w.sub_(1.0)  # now negative: checked, refused
    with pytest.raises(ValueError, match="finite and non-negative"):
        hm.reduce(loss, w)


def test_a_batch_changed_in_place_after_update_does_not_move_its_scores():
    memory = ScoreMemory(64)
    sampler = HardExampleSampler(memory, batch_size=4, policy="uniform", seed=0, chunk=4)
    batch = next(iter(sampler))
    drawn = batch.copy()
    sampler.update(batch, np.array([1.0, 2.0, 3.0, 4.0]))
    batch[:] = batch[::-1].copy()  # the loop reorders its array (e.g. for a sorted h5py read)
    np.testing.assert_array_equal(memory.get("score")[drawn], [1.0, 2.0, 3.0, 4.0])


def test_guards_that_make_a_selective_backprop_difficulty_nan_are_refused():
    class Broken(hm.NoiseGuard):  # no name: not registered
        def adjust_difficulty(self, values, indices):
            return np.full_like(values, np.nan)

    sampler = HardExampleSampler(ScoreMemory(64), batch_size=4, policy=SelectiveBackpropPolicy(guards=[Broken()]),
                                 seed=0)
    batch = next(iter(sampler))
    with pytest.raises(ValueError, match="the guards' difficulty of per_sample_loss has 4 non-finite"):
        sampler.update(batch, np.ones(4))


def test_a_saved_drawn_batch_with_nan_weights_is_refused_outside_candidate_batches():
    memory = ScoreMemory(64)
    sampler = HardExampleSampler(memory, batch_size=4, policy="importance", seed=0, chunk=4)
    next(iter(sampler))
    state = sampler.state_dict()
    state["drawn"]["weights"][1][0] = float("nan")
    fresh = HardExampleSampler(ScoreMemory(64), batch_size=4, policy="importance", seed=0, chunk=4)
    with pytest.raises(ValueError, match="NaN weights, which only candidate batches have"):
        fresh.load_state_dict(state)


def test_the_weights_of_part_of_a_batch_keep_the_batch_s_check():
    sampler = HardExampleSampler(ScoreMemory(64), batch_size=4, policy=LossWeighted(), seed=0)
    batch = next(iter(sampler))
    sampler.update(batch, torch.tensor([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match="finite and non-negative"):
        hm.reduce(torch.rand(2), sampler.weights(batch[:2].copy()))
    uniform = HardExampleSampler(ScoreMemory(64), batch_size=4, policy="uniform", seed=0)
    part = next(iter(uniform))[1:3].copy()
    torch.testing.assert_close(hm.reduce(torch.ones(2), uniform.weights(part)), torch.tensor(1.0))
