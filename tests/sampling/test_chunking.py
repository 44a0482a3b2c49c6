"""Amortised mining: chunk = 1 is the one-batch-at-a-time sampler, larger chunks resume exactly, buffered updates
read as if written at once, and bad input still raises in the call that passed it, before anything changes."""

import hashlib

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine import HardExampleSampler, ScoreMemory

# sha256 (first 16 hex digits) of every batch, its weights before and after the update, and the final score, ema,
# seen and last_step columns of `_digest`'s loop, recorded by running it on the sampler before chunking (tag
# i10-stage1, which drew one batch per call).
ONE_BATCH_AT_A_TIME = {
    "importance": "2f9a6467a90ffd9e", "uniform": "3a0e1930879150c5", "rank": "26fd6379247a97f2",
    "selective_backprop": "70f75d6138f52777", "prune_easy": "8caf74467fee7ca4",
    "importance+guards": "9b4db7d2504473bf",
}


def _policy(name):
    if name == "prune_easy":
        return hm.PruneEasyPolicy(warmup=1)
    if name == "importance+guards":
        return hm.ImportancePolicy(normalize="max", guards=[hm.NoiseGuard(), hm.ClassBalance(), hm.WeightCap(4.0)])
    if name == "importance":  # the digests were recorded with v0.1's default, prioritised replay's "max"
        return hm.ImportancePolicy(normalize="max")
    return name


def _digest(policy, chunk: int, epochs: int = 3, n: int = 500, b: int = 32) -> str:
    labels = np.arange(n) % 5
    memory = ScoreMemory(n, labels=labels)
    sampler = HardExampleSampler(memory, batch_size=b, policy=policy, seed=3, chunk=chunk)
    rng = np.random.default_rng(0)
    h = hashlib.sha256()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for batch in sampler:
            losses = rng.random(batch.size) * (1 + labels[batch])
            before = sampler.weights(batch).numpy()
            sampler.update(torch.from_numpy(batch), torch.from_numpy(losses))
            for part in (batch, before, sampler.weights(batch).numpy()):
                h.update(part.tobytes())
    for name in ("score", "ema", "seen", "last_step"):
        h.update(memory.get(name).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(ONE_BATCH_AT_A_TIME))
def test_chunk_of_one_gives_the_batches_of_one_batch_at_a_time(name):
    assert _digest(_policy(name), chunk=1) == ONE_BATCH_AT_A_TIME[name]


def test_larger_chunks_change_priority_draws_only():
    assert _digest("uniform", chunk=16) == ONE_BATCH_AT_A_TIME["uniform"]  # a shuffle does not read the memory
    assert _digest("importance", chunk=16) != ONE_BATCH_AT_A_TIME["importance"]


@pytest.mark.parametrize("memory_first", [True, False])
@pytest.mark.parametrize("policy", ["importance", "uniform"])
def test_resume_in_the_middle_of_a_chunk_continues_exactly(tmp_path, policy, memory_first, run_steps):
    n, batch, total, stop = 103, 10, 27, 6  # chunks of 4: stop after batch 2 of the second chunk
    reference = run_steps(HardExampleSampler(ScoreMemory(n), batch, policy=policy, seed=7, chunk=4), total)
    memory = ScoreMemory(n)
    sampler = HardExampleSampler(memory, batch, policy=policy, seed=7, chunk=4)
    before = run_steps(sampler, stop)
    if memory_first:  # reading the memory writes the buffered updates; the sampler's state does not depend on it
        state = {"memory": memory.state_dict(), "sampler": sampler.state_dict()}
    else:
        state = {"sampler": sampler.state_dict(), "memory": memory.state_dict()}
    hm.save_state(state, tmp_path / "ckpt.pt")
    loaded = hm.load_state(tmp_path / "ckpt.pt")
    memory2 = ScoreMemory(n)
    memory2.load_state_dict(loaded["memory"])
    sampler2 = HardExampleSampler(memory2, batch, policy=policy, seed=7, chunk=4)
    sampler2.load_state_dict(loaded["sampler"])
    after = run_steps(sampler2, total - stop, start_step=stop)
    for k, (a, b) in enumerate(zip(reference, before + after)):
        assert np.array_equal(a, b), f"batch {k} differs"


def test_buffered_updates_read_as_if_written_at_once(fake_loss):
    n = 50
    direct, buffered = ScoreMemory(n), ScoreMemory(n)
    sampler = HardExampleSampler(buffered, batch_size=8, policy="importance", seed=1, chunk=8)
    batches = iter(sampler)
    rng = np.random.default_rng(0)
    for step in range(3):
        batch = next(batches)
        prob = rng.random(batch.size)
        sampler.update(batch, fake_loss(batch, step), true_prob=prob)
        direct.update(batch, fake_loss(batch, step), true_prob=prob)
    assert buffered.queued == 3  # not written yet ...
    for name in ("score", "ema", "seen", "last_step", "confidence", "variability"):  # ... but read as written
        np.testing.assert_array_equal(buffered.get(name), direct.get(name))
    assert buffered.updates == direct.updates == 3 and buffered.queued == 0


@pytest.mark.parametrize("bad, error, match", [
    (lambda b: np.where(np.arange(b.size) == 2, np.nan, 1.0), ValueError, "per_sample_loss has 1 non-finite"),
    (lambda b: np.ones(b.size - 1), ValueError, "per_sample_loss has shape"),
    (lambda b: np.ones(b.size, dtype=complex), TypeError, "per_sample_loss must be a real-valued"),
    (lambda b: torch.full((b.size,), float("inf")), ValueError, "per_sample_loss has"),
    (lambda b: torch.full((b.size,), float("nan"), dtype=torch.bfloat16), ValueError, "per_sample_loss has 8 non"),
    (lambda b: torch.ones(b.size, 1), ValueError, r"per_sample_loss must be 1-D \[B\], got shape \(8, 1\)"),
])
def test_bad_losses_raise_in_the_call_while_updates_are_buffered(bad, error, match, fake_loss):
    memory, reference = ScoreMemory(40), ScoreMemory(40)
    sampler = HardExampleSampler(memory, batch_size=8, policy="importance", seed=2, chunk=4)
    batches = iter(sampler)
    for step in range(2):
        batch = next(batches)
        sampler.update(batch, fake_loss(batch, step))
        reference.update(batch, fake_loss(batch, step))
    batch = next(batches)
    with pytest.raises(error, match=match):
        sampler.update(batch, bad(batch))
    with pytest.raises(ValueError, match="indices out of range"):
        sampler.update(np.array([3, 40]), np.ones(2))
    assert memory.queued == 2
    np.testing.assert_array_equal(memory.get("seen"), reference.get("seen"))
    np.testing.assert_array_equal(memory.get("score"), reference.get("score"))


def test_the_fused_check_accepts_what_fits_and_refuses_what_does_not():
    memory = ScoreMemory(10)
    sampler = HardExampleSampler(memory, batch_size=4, policy="uniform", seed=0, chunk=4)
    batches = iter(sampler)
    batch = next(batches)
    sampler.update(batch, np.full(4, 3e38))  # float32's range: kept (a float64 sum of them would be huge)
    with pytest.raises(ValueError, match="column 'score'"):
        sampler.update(next(batches), np.full(4, 1e308))  # finite, but no float32 holds it
    assert memory.queued == 1
    assert (memory.get("seen")[batch] == 1).all() and memory.updates == 1
    assert memory.get("seen").sum() == 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_losses_as_cpu_tensors_of_any_floating_dtype_record_what_numpy_losses_record(dtype):
    """The per-step path copies and ranges a CPU tensor with torch; the memory must be as with numpy input."""
    memories = [ScoreMemory(48), ScoreMemory(48)]
    samplers = [HardExampleSampler(m, batch_size=8, policy="importance", seed=1, chunk=3) for m in memories]
    rng = np.random.default_rng(0)
    for batch_t, batch_n in zip(samplers[0], samplers[1]):
        losses = torch.from_numpy(rng.random(batch_t.size) * 4).to(dtype)
        samplers[0].update(torch.from_numpy(batch_t), losses.requires_grad_(True))
        samplers[1].update(batch_n, losses.detach().double().numpy())
    for name in ("score", "ema", "seen", "last_step"):
        np.testing.assert_array_equal(memories[0].get(name), memories[1].get(name))
    assert np.isfinite(samplers[0].stats()["loss_variance"])


def test_chunk_must_be_positive():
    with pytest.raises(ValueError, match="chunk"):
        HardExampleSampler(ScoreMemory(5), batch_size=2, chunk=0)


def test_the_drawn_chunk_is_saved_as_drawn_batches_and_checked(run_steps):
    sampler = HardExampleSampler(ScoreMemory(30), batch_size=4, policy="importance", seed=0, chunk=3)
    run_steps(sampler, 2)
    state = sampler.state_dict()
    assert state["position"] == 2 and state["drawn"]["positions"].tolist() == [2]  # the chunk's unconsumed batch
    state["drawn"]["indices"][0] = state["drawn"]["indices"][0] + 100
    before = repr(sampler.state_dict())
    with pytest.raises(ValueError, match="drawn"):
        sampler.load_state_dict(state)
    assert repr(sampler.state_dict()) == before


def test_statistics_needed_names_what_guards_read():
    assert HardExampleSampler(ScoreMemory(5), 2, policy="importance").statistics_needed == ()
    aum = hm.ImportancePolicy(guards=[hm.NoiseGuard(method="aum")])
    assert HardExampleSampler(ScoreMemory(5), 2, policy=aum).statistics_needed == ("margin",)
    logits, targets = torch.randn(6, 3), torch.randint(0, 3, (6,))
    assert hm.scores.signals(logits, targets, names=()) == {}
    assert set(hm.scores.signals(logits, targets, names=["margin"])) == {"margin"}
    assert set(hm.scores.signals(logits, targets)) == {"true_prob", "correct", "margin"}
    with pytest.raises(ValueError, match="names"):
        hm.scores.signals(logits, targets, names=["nope"])


def test_a_chunk_s_importance_weights_in_one_call_are_those_of_one_call_per_batch():
    """ImportancePolicy computes a chunk's weights as rows of one array; a subclass that overrides `weights`
    without saying it takes rows is called batch by batch, and both give the same weights."""
    calls = []

    class PerBatch(hm.ImportancePolicy):  # no name: not registered
        def weights(self, probabilities, num_samples):
            calls.append(probabilities.shape)
            return super().weights(probabilities, num_samples)

    assert hm.ImportancePolicy.weights_rows and not PerBatch.weights_rows
    drawn = []
    for policy in (hm.ImportancePolicy(alpha=2.0, mix=0.2), PerBatch(alpha=2.0, mix=0.2)):
        memory = ScoreMemory(200)
        memory.update(np.arange(200), np.linspace(0.1, 5.0, 200))
        sampler = HardExampleSampler(memory, batch_size=8, policy=policy, seed=4, chunk=5)
        batches = list(sampler)
        drawn.append([(b, sampler.weights(b).numpy()) for b in batches])
    assert calls and all(shape == (8,) for shape in calls)
    for (b1, w1), (b2, w2) in zip(*drawn):
        np.testing.assert_array_equal(b1, b2)
        np.testing.assert_array_equal(w1, w2)


@pytest.mark.parametrize("name", ["uniform", "prune_easy", "selective_backprop", "importance+guards"])
def test_the_default_chunk_is_16_for_priority_draws_and_64_otherwise_and_changes_no_shuffled_batch(name):
    expected = 16 if name == "importance+guards" else 64
    assert HardExampleSampler(ScoreMemory(10), batch_size=2, policy=_policy(name)).chunk == expected
    if name != "importance+guards":  # shuffled passes: any chunk gives the batches of one at a time
        assert _digest(_policy(name), 64) == ONE_BATCH_AT_A_TIME[name]
