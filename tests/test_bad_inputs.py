"""Bad inputs of issue 11, each refused cleanly: a ValueError or TypeError naming the argument (and the value where
there is one), raised before anything changes. The distributed cases are in tests/distributed/test_agreement.py.

Counts measured by these tests (47 cases here, 9 two-process cases in tests/distributed/test_agreement.py):

    issue item                        tried   refused cleanly   unclear   accepted silently   partial writes   hangs
    1 derived overflow, schedules        5          5               0            0                  0            0
    2 distributed agreement              9          9               0            0                  0            0
    3 partial loads                      2          2               0            0                  0            0
    4 invalid loaded states             11         11               0            0                  0            0
    5 checkpoints                        8          8               0            0                  0            0
    6 silent acceptances                11         11               0            0                  0            0
    7 unclear errors                     9          9               0            0                  0            0
    8 OHEM keep=0 (library side)         1          1               0            0                  0            0
    total                               56         56               0            0                  0            0

Against the code before the fix (tag i10-stage1) 54 of the 56 fail: 25 did not raise at all, 1 returned a wrong
result silently (-1 for every negative), 13 raised an error that is not the one asked for (torch's IndexError, an
AttributeError, an AssertionError, an UnpicklingError advising weights_only=False, a RuntimeError after a partial
write, a message naming another argument), 5 read files that carry no integrity header, 1 left a killed save's
.tmp behind, and the 9 distributed cases hung until the 10 s group timeout, lost the connection or desynchronised.
Two were already refused there and stay as regression tests: a sampler state without its 'policy' key, and
`correct=[nan, ...]`. Where the call writes state, a case also checks that the state afterwards equals the state
before. The tests after the cases (schedule
bounds, configs taken on request, legacy files, temporaries of live writers) check what stays allowed.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine.checkpoint import MAGIC
from hardmine.inbatch.losses import FocalLoss, MisclassifiedUpweight, OHEMLoss
from hardmine.inbatch.select import Stochastic
from hardmine.metric import BatchHardMiner, CrossBatchMemory
from hardmine.metric.distances import SquaredEuclideanDistance
from hardmine.retrieval import mine_hard_negatives
from hardmine.retrieval.pool import NegativePool
from hardmine.sampling.schedules import Linear, Step


def snapshot(*objects) -> str:
    """The full state of `objects`, as text: equal before and after a refused call means nothing changed."""
    parts = []
    for obj in objects:
        state = obj.state_dict()
        parts.append(repr(hm.state.from_saved(state)) if not isinstance(obj, torch.nn.Module) else repr(state))
    return "\n".join(parts)


def refused(action, error, match, *objects):
    """`action()` raises `error` matching `match`, and `objects` keep their state."""
    before = snapshot(*objects)
    with pytest.raises(error, match=match):
        action()
    assert snapshot(*objects) == before, "state changed by a refused call"


def started(policy, n=20, batch=4, labels=None, **kw):
    memory = hm.ScoreMemory(n, labels=labels)
    sampler = hm.HardExampleSampler(memory, batch, policy=policy, seed=0, **kw)
    batches = iter(sampler)
    first = next(batches)
    sampler.update(first, np.linspace(0.5, 1.0, first.size))
    return memory, sampler, next(batches)


# 1. what update derives ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha, loss", [(2.0, 1e20), (1.0, 1e39)])
def test_a_finite_loss_whose_priority_overflows_is_refused_and_does_not_poison(alpha, loss):
    memory, sampler, batch = started(hm.ImportancePolicy(alpha=alpha))
    losses = np.ones(batch.size)
    losses[2] = loss
    refused(lambda: sampler.update(batch, losses), ValueError, rf"per_sample_loss.*{loss:.4g}".replace("+", r"\+"),
            sampler, memory)
    sampler.update(batch, np.ones(batch.size))  # still usable: draws, epochs, a state that loads
    assert len(list(sampler)) > 0
    hm.HardExampleSampler(hm.ScoreMemory(20), 4, policy=hm.ImportancePolicy(alpha=alpha)).load_state_dict(
        sampler.state_dict())


def test_a_loss_that_overflows_only_later_in_the_schedule_is_refused_now():
    memory, sampler, batch = started(hm.ImportancePolicy(alpha=Linear(1.0, 3.0, epochs=5)))
    losses = np.ones(batch.size)
    losses[0] = 1e15  # 1e15 at alpha 1 is fine, at alpha 3 (epoch 5) it is 1e45
    refused(lambda: sampler.update(batch, losses), ValueError, r"per_sample_loss.*alpha=3.*1e\+15", sampler, memory)


@pytest.mark.parametrize("make, match", [
    (lambda: hm.ImportancePolicy(alpha=Linear(1.0, 60.0, epochs=10)), r"alpha must be in \[0.0, 16.0\], got 60.0 as "
                                                                      r"the highest value of Linear"),
    (lambda: hm.RankPolicy(pressure=Step(100.0, 0.5)), r"pressure must be in \[1.0, inf\), got 0.0 as the lowest"),
], ids=["alpha_rising_to_60", "pressure_falling_to_0"])
def test_scheduled_parameters_are_checked_over_their_whole_schedule(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# 3. partial loads ------------------------------------------------------------------------------------------------

def test_a_bad_generator_state_changes_nothing_in_stochastic():
    selector = Stochastic(history_size=8, seed=1)
    selector(torch.rand(5))
    state = selector.state_dict()
    state["generator"] = torch.zeros(3, dtype=torch.uint8)
    refused(lambda: selector.load_state_dict(state), ValueError, r"generator", selector)


def encoder(ids, dim=4):
    return np.random.default_rng(7).standard_normal((100, dim)).astype(np.float32)[ids]


def pool(num_queries=10, **kw):
    mine = functools.partial(mine_hard_negatives, positives=[[i] for i in range(num_queries)], num_negatives=3,
                             progress=False)
    return NegativePool(encoder, encoder, mine, num_queries=num_queries, corpus_size=100, **kw)


def test_another_pools_state_changes_nothing():
    mine, other = pool(), pool(num_queries=12)
    mine.step(0)
    other.step(0)
    refused(lambda: mine.load_state_dict(other.state_dict()), ValueError, r"num_queries: saved 12, constructed with 10",
            mine)


# 4. invalid states -----------------------------------------------------------------------------------------------

def sampler_state_cases():
    def noise_mask(state):
        state["policy"]["guards"][0]["state"]["suspect"] = torch.zeros(7, dtype=torch.bool)

    def subset_ids(state):
        state["epoch_state"]["subset"] = torch.tensor([0, 25], dtype=torch.int64)
        state["epoch_state"]["subset_weights"] = torch.ones(2, dtype=torch.float64)

    def bogus_mode(state):
        state["epoch_state"]["mode"] = "bogus"

    def unseen_nan(state):
        state["policy"]["state"]["unseen_score"] = float("nan")

    def missing_policy(state):
        del state["policy"]

    def other_alpha(state):
        state["policy"]["config"]["alpha"] = {"schedule": "constant", "value": 1.0}

    return [("noise_suspect_mask_of_wrong_length", noise_mask, r"suspect'\] must have length 20"),
            ("subset_ids_beyond_N", subset_ids, r"subset'\] must hold values < 20, got 25"),
            ("mode_bogus", bogus_mode, r"mode'\] must be one of \['subset', 'priority', 'candidates'\], got 'bogus'"),
            ("unseen_score_nan", unseen_nan, r"unseen_score'\] must be finite, got nan"),
            ("missing_policy_key", missing_policy, r"missing keys \['policy'\]"),
            ("saved_config_differs", other_alpha, r"alpha: saved 1.0, constructed with 0.3")]


@pytest.mark.parametrize("name, corrupt, match", sampler_state_cases(), ids=[c[0] for c in sampler_state_cases()])
def test_invalid_sampler_states_are_refused_before_anything_changes(name, corrupt, match):
    policy = lambda: hm.ImportancePolicy(alpha=0.3, guards=[hm.NoiseGuard(min_visits=1)])  # noqa: E731
    memory, sampler, _ = started(policy(), labels=np.arange(20) % 2)
    list(sampler)  # an epoch start: the guard's mask [N] exists
    state = sampler.state_dict()
    if name == "subset_ids_beyond_N":
        memory, sampler, _ = started("prune_easy", labels=np.arange(20) % 2)
        state = sampler.state_dict()
    corrupt(state)
    target = sampler if name == "subset_ids_beyond_N" else hm.HardExampleSampler(
        hm.ScoreMemory(20, labels=np.arange(20) % 2), 4, policy=policy(), seed=0)
    refused(lambda: target.load_state_dict(state), ValueError, match, target)


@pytest.mark.parametrize("column, value, match", [
    ("score", np.nan, r"state\['score'\] is NaN at 1 sample\(s\) with seen > 0"),
    ("score", np.inf, r"state\['score'\] must be finite"),
    ("seen", -3, r"state\['seen'\] must hold values in \[0"),
], ids=["score_nan_seen", "score_inf", "negative_seen"])
def test_invalid_memory_states_are_refused(column, value, match):
    memory = hm.ScoreMemory(5)
    memory.update([1, 2], [0.5, 1.5])
    state = memory.state_dict()
    state[column][1] = value
    fresh = hm.ScoreMemory(5)
    refused(lambda: fresh.load_state_dict(state), ValueError, match, fresh)


def test_nan_cross_batch_memory_embeddings_are_refused():
    memory = CrossBatchMemory(8, 3)
    memory.enqueue(torch.randn(4, 3), torch.arange(4), step=0)
    state = memory.state_dict()
    state["embeddings"][2, 1] = float("nan")
    fresh = CrossBatchMemory(8, 3)
    refused(lambda: fresh.load_state_dict(state), ValueError, r"state\['embeddings'\] has non-finite values", fresh)


def test_negative_pool_ids_outside_the_corpus_are_refused():
    source, fresh = pool(), pool()
    source.step(0)
    state = source.state_dict()
    state["indices"][0, 0] = 10**6
    refused(lambda: fresh.load_state_dict(state), ValueError, r"indices'\] must hold values < 100, got 1e\+06", fresh)


# 5. checkpoints --------------------------------------------------------------------------------------------------

def test_what_save_state_writes_load_state_reads(tmp_path):
    source = pool()
    source.step(0)
    hm.save_state({"pool": source.state_dict(), "count": np.int64(3), "rate": np.float32(0.5),
                   "array": np.arange(3)}, tmp_path / "c.pt")
    state = hm.load_state(tmp_path / "c.pt")
    restored = pool()
    restored.load_state_dict(state["pool"])
    np.testing.assert_array_equal(restored.negatives(np.arange(10)), source.negatives(np.arange(10)))
    assert state["count"] == 3 and type(state["count"]) is int and state["rate"] == 0.5
    assert torch.equal(state["array"], torch.arange(3))


def test_save_state_refuses_what_load_state_cannot_read_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"state\['pool'\]\['report'\].*RefreshRecord.*load_state cannot read"):
        hm.save_state({"pool": {"report": hm.retrieval.RefreshRecord(0, "initial", 0.0, 1, 1)}},
                      tmp_path / "c.pt")
    assert os.listdir(tmp_path) == []


def saved_memory(tmp_path) -> tuple[Path, bytes]:
    memory = hm.ScoreMemory(4000)
    memory.update(np.arange(4000), np.linspace(0, 1, 4000))
    path = tmp_path / "ckpt.pt"
    hm.save_state({"memory": memory.state_dict()}, path)
    return path, path.read_bytes()


@pytest.mark.parametrize("damage, match", [
    (lambda data: data[:len(data) // 2] + bytes(64) + data[len(data) // 2 + 64:], r"is corrupted: its payload does "
                                                                                 r"not match the checksum"),
    (lambda data: data[: len(data) - 100], r"is truncated: it holds \d+ of the \d+ payload bytes"),
    (lambda data: data[:10], r"is truncated: 10 bytes, it ends inside the checkpoint header"),
    (lambda data: b"", r"is truncated: 0 bytes"),
    (lambda data: b"garbage" * 20, r"is not a hardmine checkpoint"),
], ids=["64_flipped_bytes", "truncated_payload", "truncated_header", "empty", "garbage"])
def test_damaged_checkpoints_are_named_and_described(tmp_path, damage, match):
    path, data = saved_memory(tmp_path)
    assert data.startswith(MAGIC)
    path.write_bytes(damage(data))
    with pytest.raises(ValueError, match=rf"{path}.*{match}|{match}") as info:
        hm.load_state(path)
    assert str(path) in str(info.value)


_SLOW_WRITER = """
import sys, time
from hardmine.atomic import write_with
def write(f):
    f.write(b"x" * 1_000_000)
    f.flush()
    time.sleep(60)
write_with(sys.argv[1], write)
"""


def test_a_save_killed_midway_leaves_no_temporary_after_the_next_save(tmp_path):
    path = tmp_path / "ckpt.pt"
    env = {**os.environ, "PYTHONPATH": str(Path(hm.__file__).parents[1])}
    writer = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(path)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".ckpt.pt.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.glob(".ckpt.pt.*.tmp")), "the writer never started"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert list(tmp_path.glob(".ckpt.pt.*.tmp"))  # what a kill -9 leaves
    hm.save_state({"v": 1}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]
    assert hm.load_state(path) == {"v": 1}


# 6. silent acceptances -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("correct, match", [
    ([np.nan, 1, 0], r"correct has 1 non-finite"),
    ([0, 5, 1], r"correct must hold whole numbers in \[0, 1\].*5.0 at index"),
    ([0, 1, 300], r"correct must hold whole numbers in \[0, 1\].*300.0 at index"),
], ids=["nan", "five", "three_hundred"])
def test_correct_must_be_0_or_1(correct, match):
    memory, sampler, batch = started("importance")
    refused(lambda: sampler.update(batch[:3], [1.0, 1.0, 1.0], correct=correct), ValueError, match, sampler, memory)


def test_misclassified_upweight_refuses_nan_logits_before_its_memory_changes():
    memory = hm.ScoreMemory(10)
    loss = MisclassifiedUpweight(torch.nn.CrossEntropyLoss(reduction="none"), memory=memory)
    logits = torch.tensor([[float("nan"), 0.0], [0.0, 1.0]])
    refused(lambda: loss(logits, torch.tensor([0, 1]), indices=[0, 1]), ValueError, r"logits has 1 non-finite", memory)


def test_focal_loss_refuses_nan_logits():
    with pytest.raises(ValueError, match=r"logits has 1 non-finite"):
        FocalLoss()(torch.tensor([[float("nan"), 0.0, 0.0]]), torch.tensor([0]))


def test_cross_batch_memory_refuses_an_integer_dtype():
    with pytest.raises(TypeError, match=r"dtype must be a floating-point torch.dtype.*torch.int64"):
        CrossBatchMemory(8, 3, dtype=torch.int64)


def test_batch_hard_with_huge_unnormalised_embeddings_mines_or_refuses():
    labels = torch.arange(8) % 2
    miner = BatchHardMiner(distance=SquaredEuclideanDistance(normalize=False))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, generator=g)
    for scale in (1e9, 1e15):  # the folded path overflowed from 1e9 on: -1 for every negative
        anchor, _, negative = miner(x * scale, labels)
        assert (negative >= 0).all() and torch.equal(negative, miner(x, labels)[2])
    with pytest.raises(ValueError, match=r"embeddings have rows of L2 norm up to .*e\+18.*normalise"):
        miner(x * 1e18, labels)


def test_a_seed_beyond_2_64_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"seed must be below 2\*\*64, got 1361129467683753853853498429727072845824"):
        hm.HardExampleSampler(hm.ScoreMemory(10), 2, seed=2**130)
    assert len(list(hm.HardExampleSampler(hm.ScoreMemory(10), 2, seed=2**64 - 1))) == 5


def test_labels_of_1e12_are_refused_instead_of_allocating_terabytes():
    with pytest.raises(ValueError, match=r"labels must be class ids below 1048576.*1000000000000.*np.unique"):
        hm.ScoreMemory(3, labels=np.array([0, 1, 10**12]))


def test_drop_last_with_fewer_samples_than_a_batch_is_refused():
    with pytest.raises(ValueError, match=r"drop_last=True but the 5 samples of an epoch do not fill one batch of "
                                         r"batch_size 8"):
        hm.HardExampleSampler(hm.ScoreMemory(5), 8, policy="uniform", drop_last=True)


# 7. unclear errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("action, error, match", [
    (lambda: hm.ImportancePolicy(alpha=float("nan")), ValueError, r"alpha must be in \[0.0, 16.0\], got nan"),
    (lambda: FocalLoss(alpha="x"), TypeError, r"alpha must be None, a number in \[0, 1\] or a 1-D sequence.*'x'"),
    (lambda: FocalLoss()(torch.randn(4, 3), np.array([0, 1, 2, 0])), TypeError, r"target must be a torch.Tensor, got "
                                                                                 r"ndarray"),
    (lambda: OHEMLoss(torch.nn.CrossEntropyLoss(reduction="none"), keep=2)(torch.randn(4, 3),
                                                                         torch.tensor([0, 1, 5, 0])),
     ValueError, r"target holds values base_loss cannot use.*max 5"),
    (lambda: hm.reduce(torch.ones(3), np.array([1, "a", None], dtype=object)), TypeError, r"weights\[0\] must be "
                                                                                          r"real-valued.*object"),
    (lambda: hm.reduce(torch.ones(3, device="meta")), ValueError, r"per_sample_loss is a meta tensor"),
    (lambda: hm.reduce(torch.ones(3), torch.ones(3, device="meta")), ValueError, r"weights\[0\] is a meta tensor"),
    (lambda: CrossBatchMemory(8, 3, device="cuda:7" if torch.cuda.is_available() else "cuda"), ValueError,
     r"device='cuda(:7)?', but CUDA is not available|device='cuda:7', but"),
    (lambda: CrossBatchMemory(8, 3, device="nonsense"), ValueError, r"device must be a torch.device or a device "
                                                                    r"string.*'nonsense'"),
    (lambda: OHEMLoss(torch.nn.CrossEntropyLoss(reduction="none"), keep=0), ValueError,
     r"keep=0 with min_kept=0 keeps no element"),
], ids=["alpha_nan", "focal_alpha_x", "focal_numpy_target", "ohem_target_out_of_range", "reduce_object_array",
        "reduce_meta_loss", "reduce_meta_weight", "device_cuda_without_cuda", "device_nonsense", "ohem_keep_0"])
def test_errors_name_the_argument(action, error, match):
    with pytest.raises(error, match=match):
        action()


# around the cases: what stays allowed, and the helpers' edges ----------------------------------------------------

def test_schedule_bounds_cover_every_epoch_and_growth_does_not_overflow():
    growing, shrinking = Step(0.5, 1.3), Step(100.0, 0.5, low=1.0)
    assert growing.bounds() == (0.5, float("inf")) and growing(10_000) == float("inf")  # was an OverflowError
    assert shrinking.bounds() == (1.0, 100.0)
    assert Linear(2.0, 1.0, epochs=3).bounds() == (1.0, 2.0)
    hm.RankPolicy(pressure=shrinking)  # clipped at 1: allowed
    hm.SelfPacedPolicy(threshold=growing)  # a threshold may grow without bound: its default does


def test_the_sampler_names_a_different_seed_and_takes_it_when_asked():
    _, sampler, _ = started("uniform")
    other = hm.HardExampleSampler(hm.ScoreMemory(20), 4, policy="uniform", seed=5)
    with pytest.raises(ValueError, match=r"seed: saved 0, constructed with 5.*use_saved_config=True"):
        other.load_state_dict(sampler.state_dict())
    other.load_state_dict(sampler.state_dict(), use_saved_config=True)
    assert other.seed == 0


def test_a_cross_batch_memory_with_another_max_age_is_named():
    memory = CrossBatchMemory(8, 3, max_age=2)
    with pytest.raises(ValueError, match=r"max_age: saved 2, constructed with None"):
        CrossBatchMemory(8, 3).load_state_dict(memory.state_dict())
    fresh = CrossBatchMemory(8, 3)
    fresh.load_state_dict(memory.state_dict(), use_saved_config=True)
    assert fresh.max_age == 2
    with pytest.raises(ValueError, match=r"embedding_dim: saved 3, constructed with 4"):
        CrossBatchMemory(8, 4).load_state_dict(memory.state_dict(), use_saved_config=True)


def test_files_of_plain_torch_save_are_still_read(tmp_path):
    torch.save({"v": torch.arange(2)}, tmp_path / "old.pt")
    assert torch.equal(hm.load_state(tmp_path / "old.pt")["v"], torch.arange(2))


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = tmp_path / f".c.pt.{os.getpid()}.abc.tmp"
    stale = tmp_path / f".c.pt.{dead.pid}.abc.tmp"
    other_file = tmp_path / f".d.pt.{dead.pid}.abc.tmp"
    for p in (live, stale, other_file):
        p.write_bytes(b"x")
    hm.save_state({"v": 1}, tmp_path / "c.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["c.pt", live.name, other_file.name])


def test_a_single_process_keeps_the_original_error_type():
    _, sampler, batch = started("importance")
    with pytest.raises(TypeError, match="indices must hold integers"):
        sampler.update(batch.astype(np.float32), np.ones(batch.size))


def test_memory_set_refuses_values_its_column_cannot_hold():
    from hardmine.sampling.memory import Column
    memory = hm.ScoreMemory(4)
    memory.declare(Column("irreducible", np.float32, 0.0, source=None))
    refused(lambda: memory.set("irreducible", [1.0, 1e39], [0, 1]), ValueError,
            r"irreducible must hold values in \[-3.403e\+38, 3.403e\+38\].*1e\+39", memory)
