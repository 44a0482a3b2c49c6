"""Adversarial inputs at the public boundary (issue 24): each case is a call and its expected outcome, refused
with an error naming the argument (and the value), or accepted. A refused call must leave the target's state
(its `state_dict()`, or the tensors it was given) as it was. `benchmarks/hostile_counts.py` runs the same
cases and prints the counts by outcome."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hardmine as hm

OUTCOMES = ("refused cleanly", "accepted (valid)", "unclear", "accepted silently", "state changed",
            "wrongly refused", "hangs", "crashes")
_CLEAN = {"refused cleanly", "accepted (valid)"}


class Hang(Exception):
    """The call ran past its time limit."""


@dataclass
class Case:
    """One adversarial call. `expect`: a regex the error must match (it names the argument and the value), or
    None when the input is valid and must be accepted. `make` builds the target the call gets (its state is
    compared before and after a refused call); `isolate` runs it in a child process with a memory limit."""

    id: str
    category: str
    call: Callable[[Any], Any]
    expect: str | None
    make: Callable[[], Any] = lambda: None
    isolate: bool = False
    known: str | None = field(default=None)  # why a case is still open (an xfail naming the issue)


CASES: list[Case] = []


def case(id: str, category: str, call: Callable[[Any], Any], expect: str | None, **options: Any) -> None:
    CASES.append(Case(id, category, call, expect, **options))


# ------------------------------------------------------------------------------------------------ helpers
def _snapshot(target: Any) -> Any:
    if target is None:
        return None
    if hasattr(target, "state_dict"):
        return _plain(target.state_dict())
    if isinstance(target, (torch.Tensor, np.ndarray, dict, list, tuple)):
        return _plain(target)
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            return ("meta", tuple(value.shape))
        data = value.detach().cpu()
        return ("tensor", str(value.dtype), (data.float() if data.dtype == torch.bfloat16 else data).clone().numpy())
    if isinstance(value, np.ndarray):
        return ("array", str(value.dtype), value.copy())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == 3 and isinstance(a[2], np.ndarray):
        return a[:2] == b[:2] and a[2].shape == b[2].shape and np.array_equal(a[2], b[2], equal_nan=a[2].dtype.kind
                                                                               in "fc")
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def raise_hang(signum: int, frame: Any) -> None:
        raise Hang(f"ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, raise_hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(c: Case, seconds: float = 20.0) -> tuple[str, str]:
    """(outcome, detail) of one case, run in this process."""
    target = c.make()
    before = _snapshot(target)
    try:
        with _time_limit(seconds):
            c.call(target)
    except Hang as error:
        return "hangs", str(error)
    except AssertionError as error:  # the call checked its own result: a wrong answer
        return "accepted silently", f"wrong result: {error}"
    except (RecursionError, NotImplementedError, MemoryError, ArithmeticError) as error:
        return "crashes", f"{type(error).__name__}: {error}"
    except (ValueError, TypeError, OSError, RuntimeError, LookupError, AttributeError) as error:
        if isinstance(error, (LookupError, AttributeError)) and not isinstance(error, (ValueError, TypeError)):
            return "crashes", f"{type(error).__name__}: {error}"
        message = f"{type(error).__name__}: {error}"
        if c.expect is None:
            return "wrongly refused", message
        if not re.search(c.expect, str(error)):
            return "unclear", message
        if before is not None and not _same(before, _snapshot(target)):
            return "state changed", message
        return "refused cleanly", message
    if c.expect is not None:
        return "accepted silently", "no error"
    return "accepted (valid)", ""


def run_isolated(c: Case, seconds: float = 60.0) -> tuple[str, str]:
    """(outcome, detail) of a case run in a child process whose data segment may grow by 4 GiB at most."""
    tests = str(Path(__file__).parent)
    code = (f"import json, resource, sys; sys.path.insert(0, {tests!r}); import test_hostile_inputs as h; "
            "soft = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024; "
            "resource.setrlimit(resource.RLIMIT_DATA, (soft + 4 * 2**30, resource.RLIM_INFINITY)); "
            f"c = next(c for c in h.CASES if c.id == {c.id!r}); print(json.dumps(h.run_case(c, {seconds / 2})))")
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds,
                              env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
    except subprocess.TimeoutExpired:
        return "hangs", f"ran past {seconds} s"
    if done.returncode != 0:
        return "crashes", f"exit code {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    return tuple(json.loads(done.stdout.strip().splitlines()[-1]))


def outcome_of(c: Case) -> tuple[str, str]:
    return run_isolated(c) if c.isolate else run_case(c)


def _memory(n: int = 10, **kw: Any) -> hm.ScoreMemory:
    return hm.ScoreMemory(n, **kw)


def _seen_memory() -> hm.ScoreMemory:
    m = hm.ScoreMemory(10)
    m.update(np.arange(4), np.ones(4), true_prob=np.full(4, 0.5), margin=np.ones(4), correct=np.ones(4))
    return m


def _state(m: hm.ScoreMemory, **changes: Any) -> dict[str, Any]:
    state = m.state_dict()
    for key, value in changes.items():
        if value is _DELETE:
            del state[key]
        else:
            state[key] = value(state[key]) if callable(value) else value
    return state


_DELETE = object()
_I64 = np.int64


# ------------------------------------------------------------------------------------------------ memory
case("memory/num_samples=0", "memory", lambda _: hm.ScoreMemory(0), r"num_samples must be >= 1, got 0")
case("memory/num_samples=-1", "memory", lambda _: hm.ScoreMemory(-1), r"num_samples must be >= 1, got -1")
case("memory/num_samples=1.5", "memory", lambda _: hm.ScoreMemory(1.5), r"num_samples must be an integer, got 1.5")
case("memory/num_samples=True", "memory", lambda _: hm.ScoreMemory(True), r"num_samples must be an integer, got True")
case("memory/num_samples='10'", "memory", lambda _: hm.ScoreMemory("10"), r"num_samples must be an integer, got '10'")
case("memory/num_samples=None", "memory", lambda _: hm.ScoreMemory(None), r"num_samples must be an integer, got None")
case("memory/num_samples=2**44", "memory", lambda _: hm.ScoreMemory(2**44),
     r"num_samples=17592186044416 needs [\d.]+ TiB", isolate=True)
case("memory/num_samples=1", "memory", lambda _: hm.ScoreMemory(1), None)
case("memory/labels wrong shape", "memory", lambda _: hm.ScoreMemory(5, labels=np.zeros(4, _I64)),
     r"labels must have shape \(5,\), got \(4,\)")
case("memory/labels negative", "memory", lambda _: hm.ScoreMemory(3, labels=np.array([0, -1, 2])),
     r"labels must be non-negative class ids, got -1")
case("memory/labels float", "memory", lambda _: hm.ScoreMemory(3, labels=np.array([0.0, 1.0, 2.0])),
     r"labels must hold integers, got dtype float64")
case("memory/labels bool", "memory", lambda _: hm.ScoreMemory(3, labels=np.array([True, False, True])),
     r"labels must hold integers, got dtype bool")
case("memory/labels 1e12", "memory", lambda _: hm.ScoreMemory(3, labels=np.array([0, 1, 10**12])),
     r"labels must be class ids below \d+.*got 1000000000000")
case("memory/labels tensor ok", "memory", lambda _: hm.ScoreMemory(3, labels=torch.tensor([0, 1, 1])), None)
case("memory/ema_decay=1", "memory", lambda _: hm.ScoreMemory(3, ema_decay=1.0), r"ema_decay must be in .*got 1.0")
case("memory/ema_decay=-0.1", "memory", lambda _: hm.ScoreMemory(3, ema_decay=-0.1), r"ema_decay .*got -0.1")
case("memory/ema_decay=nan", "memory", lambda _: hm.ScoreMemory(3, ema_decay=math.nan), r"ema_decay .*got nan")
case("memory/ema_decay='0.9'", "memory", lambda _: hm.ScoreMemory(3, ema_decay="0.9"), r"ema_decay must be a number")

_UPDATES: list[tuple[str, Callable[[hm.ScoreMemory], Any], str | None]] = [
    ("float indices", lambda m: m.update(np.array([0.5]), [1.0]), r"indices must hold integers.*float64"),
    ("uint64 2**64-1", lambda m: m.update(np.array([2**64 - 1], np.uint64), [1.0]),
     r"indices out of range \[0, 10\).*18446744073709551615"),
    ("index -1", lambda m: m.update([-1], [1.0]), r"indices out of range \[0, 10\).*= -1"),
    ("index N", lambda m: m.update([10], [1.0]), r"indices out of range \[0, 10\).*= 10"),
    ("2-D indices", lambda m: m.update(np.zeros((2, 2), _I64), np.ones(4)), r"indices must be 1-D, got shape \(2, 2\)"),
    ("empty float indices", lambda m: m.update(np.array([]), np.array([])), r"indices is empty"),
    ("empty int indices", lambda m: m.update(np.array([], _I64), np.array([])), r"indices is empty"),
    ("string indices", lambda m: m.update(np.array(["a"]), [1.0]), r"indices must hold integers.*<U1"),
    ("meta indices", lambda m: m.update(torch.zeros(2, dtype=torch.int64, device="meta"), [1.0, 1.0]),
     r"indices is a meta tensor"),
    ("meta scores", lambda m: m.update([0, 1], torch.zeros(2, device="meta")), r"scores is a meta tensor"),
    ("score nan", lambda m: m.update([0, 1], [1.0, math.nan]), r"scores has 1 non-finite value.*at indices \[1\]"),
    ("score inf", lambda m: m.update([3], [math.inf]), r"scores has 1 non-finite value.*\[3\]"),
    ("score 1e39", lambda m: m.update([2], [1e39]), r"scores must hold values in .* e\.g\. 1e\+39 at index 2"),
    ("scores too short", lambda m: m.update([0, 1], [1.0]), r"scores has length 1 but the indices have length 2"),
    ("scores 2-D", lambda m: m.update([0, 1], np.ones((2, 2))), r"scores must be 1-D, got shape \(2, 2\)"),
    ("scores strings", lambda m: m.update([0], np.array(["x"])), r"scores must be a real-valued array.*<U1"),
    ("step -1", lambda m: m.update([0], [1.0], step=-1), r"step must be >= 0, got -1"),
    ("step 2**63", lambda m: m.update([0], [1.0], step=2**63), r"step must be at most \d+.*9223372036854775808"),
    ("step 1.5", lambda m: m.update([0], [1.0], step=1.5), r"step must be an integer, got 1.5"),
    ("step True", lambda m: m.update([0], [1.0], step=True), r"step must be an integer, got True"),
    ("true_prob 1.5", lambda m: m.update([0], [1.0], true_prob=[1.5]), r"true_prob must hold values in \[0, 1\].*1.5"),
    ("true_prob nan", lambda m: m.update([0], [1.0], true_prob=[math.nan]), r"true_prob has 1 non-finite"),
    ("correct 2", lambda m: m.update([0], [1.0], correct=[2]), r"correct must hold whole numbers in \[0, 1\].*2.0"),
    ("correct 0.5", lambda m: m.update([0], [1.0], correct=[0.5]), r"correct must hold whole numbers.*0.5"),
    ("unknown statistic", lambda m: m.update([0], [1.0], foo=[1.0]), r"update\(\) got statistic 'foo'"),
    ("margin too short", lambda m: m.update([0, 1], [1.0, 1.0], margin=[1.0]), r"margin has length 1 but"),
    ("duplicates (last wins)", lambda m: m.update([1, 1], [1.0, 2.0]), None),
    ("int32 indices", lambda m: m.update(np.array([1, 2], np.int32), [1.0, 2.0]), None),
    ("uint8 indices", lambda m: m.update(np.array([1, 2], np.uint8), [1.0, 2.0]), None),
    ("tensor inputs", lambda m: m.update(torch.tensor([0, 9]), torch.tensor([0.5, 3.0])), None),
    ("bool correct", lambda m: m.update([0], [1.0], correct=np.array([True])), None),
    ("step 0", lambda m: m.update([0], [1.0], step=0), None),
    ("step 2**62", lambda m: m.update([0], [1.0], step=2**62), None),
    ("negative score", lambda m: m.update([0], [-3.0]), None),
    ("declare object dtype", lambda m: m.declare(hm.Column("x", object)),
     r"column 'x' must have a numeric numpy dtype"),
    ("declare name 3", lambda m: m.declare(hm.Column(3, np.float32)), r"column.name must be a non-empty string, got 3"),
    ("declare reserved", lambda m: m.declare(hm.Column("label", np.float32)), r"column name 'label' is reserved"),
    ("declare a dict", lambda m: m.declare({"name": "x"}), r"column must be a hardmine.Column, got dict"),
    ("declare ok", lambda m: m.declare(hm.Column("irr", np.float32, 0.0, source=None)), None),
    ("get unknown name", lambda m: m.get("nope"), r"name must be one of .*got 'nope'"),
    ("get index 10", lambda m: m.get("score", [10]), r"indices out of range \[0, 10\).*= 10"),
    ("set unknown column", lambda m: m.set("score", np.ones(10)), r"name must be a declared column .*got 'score'"),
]
for _name, _call, _expect in _UPDATES:
    case(f"memory/update {_name}", "memory", _call, _expect, make=_memory)

_LOADS: list[tuple[str, Callable[[hm.ScoreMemory], Any], str | None]] = [
    ("None", lambda m: None, r"ScoreMemory state must be a dict, got NoneType"),
    ("a list", lambda m: [], r"ScoreMemory state must be a dict, got list"),
    ("missing seen", lambda m: _state(m, seen=_DELETE), r"missing keys \['seen'\]"),
    ("num_samples 20", lambda m: _state(m, num_samples=20), r"num_samples=20, this memory has 10"),
    ("score inf", lambda m: _state(m, score=lambda t: t.index_fill(0, torch.tensor([5]), math.inf)),
     r"state\['score'\] must be finite.*inf at index 5"),
    ("seen -1", lambda m: _state(m, seen=lambda t: t.index_fill(0, torch.tensor([2]), -1)),
     r"state\['seen'\] must hold values in \[0, inf\], got -1"),
    ("prob_count 0 with a mean", lambda m: _state(m, prob_count=lambda t: t * 0),
     r"state\['prob_mean'\] disagrees with state\['prob_count'\].*prob_mean=0.5 with prob_count=0"),
    ("prob_count deleted", lambda m: _state(m, prob_count=_DELETE),
     r"holds \['prob_m2', 'prob_mean'\] but not \['prob_count'\]"),
    ("margin_sum without count", lambda m: _state(m, margin_count=lambda t: t * 0),
     r"state\['margin_sum'\] disagrees with state\['margin_count'\]"),
    ("state_version 2", lambda m: _state(m, state_version=2), r"state_version 2, expected 1"),
    ("ema_decay nan", lambda m: _state(m, ema_decay=math.nan), r"state\['ema_decay'\] must be in .*got nan"),
    ("ema_decay other", lambda m: _state(m, ema_decay=0.5), r"ema_decay: saved 0.5, constructed with 0.9"),
    ("score float64", lambda m: _state(m, score=lambda t: t.double()),
     r"state\['score'\] must be float32 of shape \(10,\), got float64"),
    ("score NaN where seen", lambda m: _state(m, score=lambda t: t.index_fill(0, torch.tensor([0]), math.nan)),
     r"state\['score'\] is NaN at 1 sample\(s\) with seen > 0, e.g. index 0"),
    ("unknown column", lambda m: {**m.state_dict(), "extra": torch.zeros(10)}, r"columns \['extra'\]"),
    ("updates -1", lambda m: _state(m, updates=-1), r"state\['updates'\] must be >= 0, got -1"),
    ("labels given", lambda m: _state(m, labels=torch.zeros(10, dtype=torch.int64)),
     r"labels: saved .*constructed with None"),
    ("round trip", lambda m: m.state_dict(), None),
]
for _name, _state_of, _expect in _LOADS:
    case(f"memory/load {_name}", "memory",
         lambda m, _s=_state_of: m.load_state_dict(_s(m)), _expect,
         make=_seen_memory)


# ------------------------------------------------------------------------------------------------ reduce
def _sel(index: list[int], weight: list[float], shape: tuple[int, ...] = (4,)) -> hm.Selection:
    return hm.Selection(torch.tensor(index, dtype=torch.int64), torch.tensor(weight), torch.Size(shape))


_LOSS = torch.arange(1.0, 5.0)
_REDUCE: list[tuple[str, Callable[[], Any], str | None]] = [
    ("loss [B,1] weights [B]", lambda: hm.reduce(_LOSS.reshape(4, 1), torch.ones(4)),
     r"weights\[0\] has shape \(4,\) but per_sample_loss has shape \(4, 1\)"),
    ("loss [B] weights [B,1]", lambda: hm.reduce(_LOSS, torch.ones(4, 1)),
     r"weights\[0\] has shape \(4, 1\) but per_sample_loss has shape \(4,\)"),
    ("weights [3] for [4]", lambda: hm.reduce(_LOSS, torch.ones(3)), r"weights\[0\] has shape \(3,\)"),
    ("second weights wrong", lambda: hm.reduce(_LOSS, torch.ones(4), torch.ones(5)), r"weights\[1\] has shape \(5,\)"),
    ("negative weight", lambda: hm.reduce(_LOSS, -torch.ones(4)), r"weights\[0\] must be finite and non-negative"),
    ("nan weight", lambda: hm.reduce(_LOSS, torch.tensor([1.0, math.nan, 1.0, 1.0])), r"weights\[0\] must be finite"),
    ("inf weight", lambda: hm.reduce(_LOSS, torch.tensor([1.0, math.inf, 1.0, 1.0])), r"weights\[0\] must be finite"),
    ("string weights", lambda: hm.reduce(_LOSS, np.array(["a"] * 4)), r"weights\[0\] must be real-valued.*<U1"),
    ("object weights", lambda: hm.reduce(_LOSS, object()), r"weights\[0\] must be a tensor or an array"),
    ("complex weights", lambda: hm.reduce(_LOSS, torch.ones(4, dtype=torch.complex64)),
     r"weights\[0\] must be real-valued.*complex64"),
    ("meta weights", lambda: hm.reduce(_LOSS, torch.ones(4, device="meta")), r"weights\[0\] is a meta tensor"),
    ("integer loss", lambda: hm.reduce(torch.ones(4, dtype=torch.int64)), r"per_sample_loss must be floating point"),
    ("meta loss", lambda: hm.reduce(torch.ones(4, device="meta")), r"per_sample_loss is a meta tensor"),
    ("empty loss", lambda: hm.reduce(torch.ones(0)), r"per_sample_loss is empty"),
    ("list loss", lambda: hm.reduce([1.0, 2.0]), r"per_sample_loss must be a torch.Tensor, got list"),
    ("normalize 'avg'", lambda: hm.reduce(_LOSS, normalize="avg"), r"normalize must be .*got 'avg'"),
    ("two Selections", lambda: hm.reduce(_LOSS, _sel([0], [1.0]), _sel([1], [1.0])), r"2 Selections"),
    ("Selection negative weight", lambda: hm.reduce(_LOSS, _sel([0, 1], [-1.0, -1.0])),
     r"Selection's weight must be finite and non-negative: 2 are not, e.g. -1.0"),
    ("Selection nan weight", lambda: hm.reduce(_LOSS, _sel([0], [math.nan])), r"Selection's weight must be finite"),
    ("Selection for [3]", lambda: hm.reduce(_LOSS, _sel([0], [1.0], (3,))), r"made for shape \(3,\)"),
    ("Selection index 9", lambda: _sel([9], [1.0]), r"Selection.index out of range \[0, 4\)"),
    ("Selection float index", lambda: hm.Selection(torch.tensor([0.0]), torch.ones(1), torch.Size([4])),
     r"Selection.index must be a 1-D int64 tensor, got torch.float32"),
    ("scalar weight", lambda: hm.reduce(_LOSS, torch.tensor(2.0)), None),
    ("[B,1] weights for [B,T]", lambda: hm.reduce(torch.ones(4, 3), torch.ones(4, 1)), None),
    ("class weights [C] for [B,C]", lambda: hm.reduce(torch.ones(4, 3), torch.ones(3)), None),
    ("bool mask", lambda: hm.reduce(_LOSS, torch.tensor([True, False, True, False])), None),
    ("numpy weights", lambda: hm.reduce(_LOSS, np.ones(4)), None),
    ("Selection ok", lambda: hm.reduce(_LOSS, _sel([1, 3], [1.0, 0.5]), normalize="weighted"), None),
    ("all-zero weights weighted", lambda: hm.reduce(_LOSS, torch.zeros(4), normalize="weighted"), None),
]
for _name, _call, _expect in _REDUCE:
    case(f"reduce/{_name}", "reduce", lambda _, f=_call: f(), _expect)


def _reduce_keeps_inputs(_: Any) -> None:
    loss, w = _LOSS.clone(), torch.tensor([1.0, 2.0, 3.0, 4.0])
    hm.reduce(loss, w)
    assert torch.equal(loss, _LOSS) and torch.equal(w, torch.tensor([1.0, 2.0, 3.0, 4.0]))


def _reduce_value(_: Any) -> None:
    got = hm.reduce(torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [0.5]])).item()
    assert got == pytest.approx(1.0), got


case("reduce/inputs unchanged", "reduce", _reduce_keeps_inputs, None)
case("reduce/[B,1] with [B,1] value", "reduce", _reduce_value, None)


# ------------------------------------------------------------------------------------------------ in-batch
def _ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, target, reduction="none")


_LOGITS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
_TARGET = torch.tensor([1, 1, 0, 0])


def _upweight(memory_size: int = 10) -> hm.MisclassifiedUpweight:
    return hm.MisclassifiedUpweight(_ce, memory=hm.ScoreMemory(memory_size))


def _sampler_memory_shared(_: Any) -> None:
    memory = hm.ScoreMemory(20)
    sampler = hm.HardExampleSampler(memory, batch_size=4, policy="uniform", seed=0)
    memory.update(np.arange(4), np.full(4, 5.0))
    hm.MisclassifiedUpweight(_ce, memory=sampler.memory)(_LOGITS, _TARGET, torch.arange(4))
    assert memory.get("score")[:4].tolist() == [5.0] * 4, memory.get("score")[:4]


def _duplicates_count_each(_: Any) -> None:
    loss = _upweight()
    weights = loss.weights(torch.tensor([True, True]), torch.tensor([0, 0]))
    assert weights.tolist() == [2.0, 4.0], weights


_INBATCH: list[tuple[str, Callable[[], Any], str | None]] = [
    ("TopK(0) keeps none", lambda: hm.TopK(0)(torch.ones(3)), None),
    ("TopK(-1)", lambda: hm.TopK(-1), r"k must be"),
    ("TopK(nan)", lambda: hm.TopK(math.nan), r"k must be.*nan"),
    ("TopK('2')", lambda: hm.TopK("2"), r"k must be.*'2'"),
    ("Threshold(nan)", lambda: hm.Threshold(math.nan), r"value must be .*nan"),
    ("Threshold keep='x'", lambda: hm.Threshold(0.5, keep="x"), r"keep must be .*'x'"),
    ("Stochastic(beta=-1)", lambda: hm.Stochastic(beta=-1), r"beta must be .*-1"),
    ("Stochastic history_size 1e30", lambda: hm.Stochastic(history_size=10**30),
     r"history_size must be at most \d+.*got 10{30}"),
    ("Stochastic seed 2**64", lambda: hm.Stochastic(seed=2**64),
     r"seed must be in \[0, 2\*\*64\), got 18446744073709551616"),
    ("Stochastic seed -1", lambda: hm.Stochastic(seed=-1), r"seed must be in \[0, 2\*\*64\), got -1"),
    ("selective_backprop load seed 1e30", lambda: _selective_seed(10**30), r"seed must be in .*got 10{30}"),
    ("TopK int scores", lambda: hm.TopK(1)(torch.ones(4, dtype=torch.int64)), r"scores must be floating point"),
    ("TopK empty scores", lambda: hm.TopK(1)(torch.ones(0)), r"scores is empty"),
    ("TopK list scores", lambda: hm.TopK(1)([1.0, 2.0]), r"scores must be a torch.Tensor, got list"),
    ("TopK mask shape", lambda: hm.TopK(1)(torch.ones(4), mask=torch.ones(3, dtype=torch.bool)),
     r"mask has shape \(3,\) but scores have shape \(4,\)"),
    ("TopK float mask", lambda: hm.TopK(1)(torch.ones(4), mask=torch.ones(4)), r"mask must be a boolean.*float32"),
    ("TopK ok", lambda: hm.TopK(2)(torch.tensor([1.0, 3.0, 2.0])), None),
    ("FocalLoss gamma -1", lambda: hm.FocalLoss(gamma=-1), r"gamma must be a finite number >= 0, got -1"),
    ("Misclassified factor 0.5", lambda: hm.MisclassifiedUpweight(_ce, 0.5),
     r"factor must be a finite number >= 1.*0.5"),
    ("Misclassified memory array", lambda: hm.MisclassifiedUpweight(_ce, memory=np.zeros(3)),
     r"memory must be a hardmine.ScoreMemory or None, got ndarray"),
    ("Misclassified no indices", lambda: _upweight()(_LOGITS, _TARGET), r"indices are required"),
    ("Misclassified indices short", lambda: _upweight()(_LOGITS, _TARGET, torch.arange(3)),
     r"indices have shape \(3,\) but the batch has shape \(4,\)"),
    ("Misclassified index 10", lambda: _upweight()(_LOGITS, _TARGET, torch.tensor([0, 1, 2, 10])),
     r"indices out of range \[0, 10\).*= 10"),
    ("Misclassified float indices", lambda: _upweight()(_LOGITS, _TARGET, torch.tensor([0.0, 1, 2, 3])),
     r"indices must hold integers.*float32"),
    ("Misclassified shares a sampler's memory", lambda: _sampler_memory_shared(None), None),
    ("Misclassified duplicates count each", lambda: _duplicates_count_each(None), None),
    ("OHEM keep 0", lambda: hm.OHEMLoss(_ce, keep=0), r"keep=0 with min_kept=0 keeps no element"),
    ("OHEM logits int", lambda: hm.OHEMLoss(_ce, keep=2)(torch.ones(4, 2, dtype=torch.int64), _TARGET),
     r"input must be floating point.*torch.int64"),
    ("Focal logits int", lambda: hm.FocalLoss()(torch.ones(4, 2, dtype=torch.int64), _TARGET),
     r"logits must be a floating-point tensor, got torch.int64"),
    ("Focal logits meta", lambda: hm.FocalLoss()(torch.ones(4, 2, device="meta"), _TARGET), r"is a meta tensor"),
]
for _name, _call, _expect in _INBATCH:
    case(f"inbatch/{_name}", "inbatch", lambda _, f=_call: f(), _expect)


def _selective_seed(seed: int) -> None:
    state = hm.build_policy("selective_backprop").state_dict()
    state["config"]["seed"] = seed
    hm.build_policy("selective_backprop").load_state_dict(state, use_saved_config=True)


def _stochastic() -> hm.Stochastic:
    s = hm.Stochastic(beta=1.0, history_size=8, seed=0)
    s(torch.arange(4.0))
    return s


def _stochastic_state(**changes: Any) -> Callable[[hm.Stochastic], None]:
    def load(target: hm.Stochastic) -> None:
        state = target.state_dict()
        inner = state.get("state", state)
        inner.update(changes)
        target.load_state_dict(state)

    return load


case("inbatch/Stochastic load position 99", "inbatch", _stochastic_state(position=99),
     r"\['position'\] must be in \[0, 7\], got 99", make=_stochastic)
case("inbatch/Stochastic load count -1", "inbatch", _stochastic_state(count=-1),
     r"\['count'\] must be in \[0, 8\], got -1", make=_stochastic)
case("inbatch/Stochastic load round trip", "inbatch", lambda s: s.load_state_dict(s.state_dict()), None,
     make=_stochastic)


# ------------------------------------------------------------------------------------------------ miners
def _miner_inputs(scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 4, generator=g) * scale, torch.randint(0, 3, (16,), generator=g)


def _triplets_scale_invariant(scale: float) -> None:
    from hardmine.metric import TripletMarginMiner

    x, y = _miner_inputs()
    a, b = TripletMarginMiner(margin=0.2)(x, y), TripletMarginMiner(margin=0.2)(x * scale, y)
    assert len(a[0]) == len(b[0]) and all(torch.equal(u, v) for u, v in zip(a, b)), (len(a[0]), len(b[0]))


def _custom_miner(output: Any) -> Any:
    from hardmine.metric.base import BaseMiner

    class Custom(BaseMiner):
        def mine(self, batch: Any) -> Any:
            return output

    return Custom()


def _t(*values: Any, dtype: torch.dtype = torch.int64) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _miner(name: str, **kw: Any) -> Any:
    from hardmine.metric import base

    return base.MINERS[name](**kw)


_X, _Y = _miner_inputs()
_MINERS: list[tuple[str, Callable[[], Any], str | None]] = [
    ("margin nan", lambda: _miner("triplet_margin", margin=math.nan), r"margin must be .*nan"),
    ("type 'x'", lambda: _miner("triplet_margin", type_of_triplets="x"), r"type_of_triplets must be .*'x'"),
    ("max_triplets 0", lambda: _miner("triplet_margin", max_triplets=0), r"max_triplets must be >= 1, got 0"),
    ("seed 'a'", lambda: _miner("triplet_margin", seed="a"), r"seed must be an int.*'a'"),
    ("seed -5", lambda: _miner("triplet_margin", seed=-5), r"seed must be in \[0, 2\*\*64\), got -5"),
    ("distance 'x'", lambda: _miner("triplet_margin", distance="x"), r"distance"),
    ("max_block_bytes 0", lambda: _miner("batch_hard", max_block_bytes=0), r"max_block_bytes must be >= 1, got 0"),
    ("embeddings list", lambda: _miner("triplet_margin")([[1.0]], [0]), r"embeddings must be a torch.Tensor, got list"),
    ("embeddings int", lambda: _miner("triplet_margin")(torch.ones(4, 2, dtype=torch.int64), _t(0, 0, 1, 1)),
     r"embeddings must be a floating-point tensor, got dtype torch.int64"),
    ("embeddings 1-D", lambda: _miner("triplet_margin")(torch.ones(4), _t(0, 0, 1, 1)),
     r"embeddings must be 2-D \[batch, dim\], got shape \(4,\)"),
    ("embeddings nan", lambda: _miner("triplet_margin")(_X.index_fill(0, _t(3), math.nan), _Y),
     r"embeddings has non-finite values .* rows \[3\]"),
    ("embeddings inf", lambda: _miner("batch_hard")(_X.index_fill(0, _t(5), math.inf), _Y), r"rows \[5\]"),
    ("labels float", lambda: _miner("triplet_margin")(_X, _Y.float()), r"labels must hold integers.*float32"),
    ("labels short", lambda: _miner("triplet_margin")(_X, _Y[:3]), r"labels has length 3 but embeddings has 16 rows"),
    ("labels 2-D", lambda: _miner("triplet_margin")(_X, _Y.reshape(4, 4)), r"labels must be 1-D, got shape \(4, 4\)"),
    ("labels None", lambda: _miner("triplet_margin")(_X, None), r"labels is None"),
    ("ref_emb dim 3", lambda: _miner("triplet_margin")(_X, _Y, torch.ones(5, 3), _t(0, 1, 2, 0, 1)),
     r"ref_emb has dim 3 but embeddings has dim 4"),
    ("ref_labels without ref_emb", lambda: _miner("triplet_margin")(_X, _Y, None, _Y), r"ref_labels was given without"),
    ("ref_emb without ref_labels", lambda: _miner("triplet_margin")(_X, _Y, _X),
     r"ref_emb was given without ref_labels"),
    ("positive_mask shape", lambda: _miner("triplet_margin", positive_mask=torch.ones(3, 3, dtype=torch.bool))(_X, _Y),
     r"positive_mask must have shape \(16, 16\).*\(3, 3\)"),
    ("positive_mask float", lambda: _miner("triplet_margin", positive_mask=torch.ones(16, 16))(_X, _Y),
     r"positive_mask must be a boolean tensor, got dtype torch.float32"),
    ("unnormalised overflow", lambda: _miner("triplet_margin", distance=_dot())(_X * 1e20, _Y),
     r"embeddings have rows of L2 norm up to .* exceed what torch.float32 holds"),
    ("X*1e20 same triplets", lambda: _triplets_scale_invariant(1e20), None),
    ("X*1e-25 same triplets", lambda: _triplets_scale_invariant(1e-25), None),
    ("X*1e6 same triplets", lambda: _triplets_scale_invariant(1e6), None),
    ("custom id 1e6", lambda: _custom_miner((_t(10**6), _t(0), _t(1)))(_X, _Y),
     r"Custom.mine output\[0\] must index an anchor .* \[0, 16\).*1000000"),
    ("custom negative -1", lambda: _custom_miner((_t(0), _t(1), _t(-1)))(_X, _Y),
     r"Custom.mine output\[2\] must index a row of the reference in \[0, 16\).*-1"),
    ("custom lengths differ", lambda: _custom_miner((_t(0, 1), _t(1), _t(2)))(_X, _Y),
     r"Custom.mine returned index tensors \[0, 1, 2\] of different lengths \[2, 1, 1\]"),
    ("custom float ids", lambda: _custom_miner((_t(0, dtype=torch.float32), _t(1), _t(2)))(_X, _Y),
     r"Custom.mine output\[0\] must be a 1-D integer tensor, got torch.float32"),
    ("custom two tensors", lambda: _custom_miner((_t(0), _t(1)))(_X, _Y),
     r"Custom.mine must return a tuple of 3 index tensors, got tuple of 2"),
    ("custom returns None", lambda: _custom_miner(None)(_X, _Y), r"Custom.mine must return a tuple of 3"),
    ("custom valid int32", lambda: _custom_miner((_t(0, dtype=torch.int32), _t(1), _t(2)))(_X, _Y), None),
    ("custom valid empty", lambda: _custom_miner((_t(), _t(), _t()))(_X, _Y), None),
    ("batch_hard ok", lambda: _miner("batch_hard")(_X, _Y), None),
    ("multi_similarity ok", lambda: _miner("multi_similarity")(_X, _Y), None),
]


def _dot() -> Any:
    from hardmine.metric.distances import DotProductSimilarity

    return DotProductSimilarity()


for _name, _call, _expect in _MINERS:
    case(f"miner/{_name}", "miners", lambda _, f=_call: f(), _expect)


def _same_output_at_scale(name: str, scale: float) -> None:
    seeded = {"seed": 0} if name in ("triplet_margin", "batch_all", "distance_weighted") else {}
    x, y = _miner_inputs()
    a, b = _miner(name, **seeded)(x, y), _miner(name, **seeded)(x * scale, y)
    assert len(a) == len(b) and all(torch.equal(u, v) for u, v in zip(a, b)), [len(t) for t in (*a, *b)]


for _name in ("batch_hard", "easy_positive_hard_negative", "distance_weighted", "multi_similarity", "pair_margin",
              "semi_hard", "batch_all"):
    for _scale in (1e20, 1e-40):
        case(f"miner/{_name} X*{_scale:g} same output", "miners",
             lambda _, n=_name, k=_scale: _same_output_at_scale(n, k), None)


# ------------------------------------------------------------------------------------------------ cross-batch memory
def _xbm(dtype: torch.dtype = torch.float32, size: int = 8) -> Any:
    from hardmine.metric import CrossBatchMemory

    return CrossBatchMemory(size, 4, dtype=dtype)


def _xbm_with(**kw: Any) -> Any:
    from hardmine.metric import CrossBatchMemory

    return CrossBatchMemory(4, 2, **kw)


def _xbm_filled(dtype: torch.dtype = torch.float32) -> Any:
    memory = _xbm(dtype)
    memory.enqueue(_X[:4], _Y[:4], 0)
    return memory


def _xbm_state(**changes: Any) -> Callable[[Any], None]:
    def load(target: Any) -> None:
        state = target.state_dict()
        for key, value in changes.items():
            state[key] = value(state[key]) if callable(value) else value
        target.load_state_dict(state)

    return load


def _f16_round_trip(_: Any) -> None:
    memory = _xbm(torch.float16)
    memory.enqueue(_X[:4] * 100, _Y[:4], 0)
    _xbm(torch.float16).load_state_dict(memory.state_dict())


_XBM: list[tuple[str, Callable[[Any], Any], str | None, Callable[[], Any]]] = [
    ("size 0", lambda _: _xbm(size=0), r"size must be >= 1, got 0", lambda: None),
    ("dtype int", lambda _: _xbm(torch.int64),
     r"dtype must be a floating-point torch.dtype.*torch.int64", lambda: None),
    ("device meta", lambda _: _xbm_with(device="meta"),
     r"device='meta': a meta device holds no data", lambda: None),
    ("label_shape 3", lambda _: _xbm_with(label_shape=3), r"label_shape must be a tuple of ints.*got 3", lambda: None),
    ("label_shape (0,)", lambda _: _xbm_with(label_shape=(0,)), r"label_shape must be >= 1, got 0", lambda: None),
    ("max_age -1", lambda _: _xbm_with(max_age=-1), r"max_age must be >= 0, got -1", lambda: None),
    ("f16 enqueue 1e6", lambda m: m.enqueue(torch.full((1, 4), 1e6), _t(0), 1),
     r"embeddings hold values up to 1e\+06 .* torch.float16 stores \(6.55e\+04\)", lambda: _xbm_filled(torch.float16)),
    ("f16 mine 1e6", lambda m: m.mine(_miner("batch_hard"), torch.full((2, 4), 1e6), _t(0, 0), 1),
     r"embeddings hold values up to 1e\+06", lambda: _xbm_filled(torch.float16)),
    ("bf16 enqueue 1e38 ok", lambda m: m.enqueue(torch.full((1, 4), 1e38), _t(0), 1), None,
     lambda: _xbm_filled(torch.bfloat16)),
    ("f16 state round trip", _f16_round_trip, None, lambda: None),
    ("enqueue dim 3", lambda m: m.enqueue(torch.ones(2, 3), _t(0, 1), 1),
     r"embeddings has dim 3 but the memory holds dim 4",
     _xbm_filled),
    ("enqueue labels float", lambda m: m.enqueue(torch.ones(2, 4), torch.ones(2), 1), r"labels must hold integers",
     _xbm_filled),
    ("enqueue labels short", lambda m: m.enqueue(torch.ones(2, 4), _t(0), 1),
     r"labels must have shape \(2,\), got \(1,\)",
     _xbm_filled),
    ("enqueue step -1", lambda m: m.enqueue(torch.ones(2, 4), _t(0, 1), -1), r"step must be >= 0, got -1", _xbm_filled),
    ("enqueue nan", lambda m: m.enqueue(torch.full((2, 4), math.nan), _t(0, 1), 1), r"embeddings has non-finite",
     _xbm_filled),
    ("mine custom id 1e6", lambda m: m.mine(_custom_miner((_t(10**6), _t(0), _t(1))), _X[:4], _Y[:4], 1),
     r"output\[0\] must index an anchor", _xbm_filled),
    ("load inf embeddings", _xbm_state(embeddings=lambda t: t.index_fill(0, _t(1), math.inf)),
     r"state\['embeddings'\] has non-finite values .* rows \[1\]", _xbm_filled),
    ("load cursor 99", _xbm_state(cursor=99), r"state\['cursor'\] must be an integer in \[0, 8\), got 99", _xbm_filled),
    ("load steps -2", _xbm_state(steps=lambda t: t.index_fill(0, _t(0), -2)),
     r"state\['steps'\] must be >= -1 .*got -2",
     _xbm_filled),
    ("load size 16", _xbm_state(config=lambda c: {**c, "size": 16}),
     r"size: saved 16, constructed with 8", _xbm_filled),
    ("load dtype", _xbm_state(config=lambda c: {**c, "dtype": "torch.float16"}), r"dtype: saved 'torch.float16'",
     _xbm_filled),
    ("load round trip", lambda m: m.load_state_dict(m.state_dict()), None, _xbm_filled),
]
for _name, _call, _expect, _make in _XBM:
    case(f"xbm/{_name}", "cross-batch memory", _call, _expect, make=_make)


# ------------------------------------------------------------------------------------------------ checkpoint files
def _tmp() -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix="hostile-"))


def _file(content: bytes) -> Path:
    path = _tmp() / "state.pt"
    path.write_bytes(content)
    return path


def _checkpoint_bytes() -> bytes:
    path = _tmp() / "ok.pt"
    hm.save_state({"a": torch.ones(3), "b": 1}, path)
    return path.read_bytes()


def _flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def _fifo(_: Any) -> Any:
    path = _tmp() / "fifo.pt"
    os.mkfifo(path)
    return hm.load_state(path)


def _dev_zero(_: Any) -> Any:
    path = _tmp() / "zero.pt"
    path.symlink_to("/dev/zero")
    return hm.load_state(path)


def _self_reference() -> dict[str, Any]:
    d: dict[str, Any] = {"x": 1}
    d["me"] = d
    return d


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


class _Opaque:
    pass


def _pickled_object() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"obj": _Opaque()}, buffer)
    return buffer.getvalue()


_FILES: list[tuple[str, Callable[[], Any], str | None, bool]] = [
    ("load None", lambda: hm.load_state(None), r"path must be a str or an os.PathLike, got None", False),
    ("load 3", lambda: hm.load_state(3), r"path must be a str or an os.PathLike, got 3", False),
    ("load ''", lambda: hm.load_state(""), r"path must not be empty", False),
    ("load missing", lambda: hm.load_state(_tmp() / "missing.pt"), r"missing.pt", False),
    ("load directory", lambda: hm.load_state(_tmp()), r"is a directory, not a regular checkpoint file", False),
    ("load FIFO", lambda: _fifo(None), r"fifo.pt is a FIFO, not a regular checkpoint file", True),
    ("load symlink to /dev/zero", lambda: _dev_zero(None), r"zero.pt is a device, not a regular checkpoint file", True),
    ("load empty file", lambda: hm.load_state(_file(b"")), r"state.pt is truncated: 0 bytes", False),
    ("load half header", lambda: hm.load_state(_file(b"HARDMINE-CHE")), r"state.pt is truncated", False),
    ("load garbage", lambda: hm.load_state(_file(b"hello world, not a checkpoint")),
     r"state.pt is not a hardmine checkpoint", False),
    ("load truncated payload", lambda: hm.load_state(_file(_checkpoint_bytes()[:-10])),
     r"state.pt is truncated: it holds \d+ of the \d+ payload bytes", False),
    ("load flipped byte", lambda: hm.load_state(_file(_flip_last(_checkpoint_bytes()))),
     r"state.pt is corrupted: its payload does not match the checksum", False),
    ("load bad header json", lambda: hm.load_state(_file(b"HARDMINE-CHECKPOINT\n{nope\nxx")),
     r"state.pt is corrupted: its checkpoint header is unreadable", False),
    ("load pickled object", lambda: hm.load_state(_file(_pickled_object())),
     r"state.pt holds objects a checkpoint may not",
     False),
    ("save into missing dir", lambda: hm.save_state({"a": 1}, _tmp() / "nope" / "x.pt"),
     r"cannot write .*nope/x.pt: its directory .*nope does not exist", False),
    ("save onto a directory", lambda: hm.save_state({"a": 1}, _tmp()), r"cannot write .*: it is a directory", False),
    ("save path None", lambda: hm.save_state({"a": 1}, None), r"path must be a str or an os.PathLike, got None", False),
    ("save state None", lambda: hm.save_state(None, _tmp() / "x.pt"), r"the state must be a dict, got NoneType", False),
    ("save self-reference", lambda: hm.save_state(_self_reference(), _tmp() / "x.pt"),
     r"cannot save state\['me'\] to .*x.pt: it contains itself", False),
    ("save nested 10000", lambda: hm.save_state({"deep": _nested(10_000)}, _tmp() / "x.pt"),
     r"nests deeper than 64 levels", False),
    ("save an object", lambda: hm.save_state({"o": _Opaque()}, _tmp() / "x.pt"), r"cannot save state\['o'\]", False),
    ("save a function", lambda: hm.save_state({"f": print}, _tmp() / "x.pt"), r"cannot save state\['f'\]", False),
    ("save meta tensor", lambda: hm.save_state({"t": torch.ones(2, device="meta")}, _tmp() / "x.pt"),
     r"cannot save state\['t'\] .* a meta tensor", False),
    ("save bool key", lambda: hm.save_state({True: 1}, _tmp() / "x.pt"), r"key True is a bool", False),
    ("load NUL in path", lambda: hm.load_state("a\0b.pt"), r"path must not contain a NUL character", False),
    ("save NUL in path", lambda: hm.save_state({"a": 1}, "a\0b.pt"), r"path must not contain a NUL character", False),
    ("save under a file", lambda: hm.save_state({"a": 1}, _file(b"x") / "x.pt"),
     r"cannot write .*state.pt/x.pt: .*state.pt is not a directory", False),
    ("load bytes path", lambda: hm.load_state(b"x.pt"), r"path must be a str or an os.PathLike, got b'x.pt'", False),
    ("round trip", lambda: hm.load_state(_file(_checkpoint_bytes())), None, False),
    ("shared (not cyclic) sub-dict", lambda: hm.save_state({"a": (s := {"x": 1}), "b": s}, _tmp() / "x.pt"), None,
     False),
    ("nested 50 ok", lambda: hm.save_state({"deep": _nested(50)}, _tmp() / "x.pt"), None, False),
]
class _Folder:
    """A folder holding a good checkpoint `state.pt`; its `state_dict()` is every file's bytes, so that a refused
    save that left a partial or temporary file shows as a changed state."""

    def __init__(self) -> None:
        self.root = _tmp()
        self.path = self.root / "state.pt"
        hm.save_state({"a": torch.ones(3)}, self.path)

    def state_dict(self) -> dict[str, Any]:
        return {p.name: p.read_bytes() for p in sorted(self.root.iterdir())}


_OVERWRITES: list[tuple[str, Callable[[Any], Any], str]] = [
    ("an object", lambda f: hm.save_state({"o": _Opaque()}, f.path), r"cannot save state\['o'\]"),
    ("a cycle", lambda f: hm.save_state(_self_reference(), f.path), r"it contains itself"),
    ("a meta tensor", lambda f: hm.save_state({"t": torch.ones(1, device="meta")}, f.path), r"a meta tensor"),
    ("a list state", lambda f: hm.save_state([1, 2], f.path), r"the state must be a dict, got list"),
]
for _name, _call, _expect in _OVERWRITES:
    case(f"files/refused save over a checkpoint: {_name}", "checkpoint files", _call, _expect, make=_Folder)

for _name, _call, _expect, _isolate in _FILES:
    case(f"files/{_name}", "checkpoint files", lambda _, f=_call: f(), _expect, isolate=_isolate)


# ------------------------------------------------------------------------------------------------ policies and guards
def _policy_state(policy: Any, edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    state = copy.deepcopy(policy.state_dict())
    edit(state)
    return state


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(state: dict[str, Any]) -> None:
        inner = state
        for key in path[:-1]:
            inner = inner[key]
        if value is _DELETE:
            del inner[path[-1]]
        else:
            inner[path[-1]] = value

    return edit


def _guarded() -> Any:
    return hm.ImportancePolicy(guards=[hm.WeightCap(5.0)])


_POLICY_LOADS: list[tuple[str, Callable[[dict[str, Any]], None], bool, str | None]] = [
    ("alpha nan (schedule)", _set(("config", "alpha"), {"schedule": "constant", "value": math.nan}), True,
     r"alpha: value must be in .*got nan"),
    ("alpha nan (number)", _set(("config", "alpha"), math.nan), True, r"alpha must be in \[0.0, 16.0\], got nan"),
    ("alpha 99", _set(("config", "alpha"), 99.0), True, r"alpha must be in \[0.0, 16.0\], got 99"),
    ("alpha unknown schedule", _set(("config", "alpha"), {"schedule": "zigzag"}), True, r"alpha: .*zigzag"),
    ("mix nan", _set(("config", "mix"), math.nan), True, r"mix must be in \[0.0, 1.0\], got nan"),
    ("mix differs", _set(("config", "mix"), 0.5), False, r"mix: saved 0.5, constructed with 0.1"),
    ("name other", _set(("name",), "uniform"), False, r"uniform"),
    ("state_version 9", _set(("state_version",), 9), False, r"state_version 9, expected 1"),
    ("config missing", _set(("config",), _DELETE), False, r"missing keys \['config'\]"),
    ("guards dropped", _set(("guards",), []), False, r"guards"),
    ("guard max_weight nan", _set(("guards", 0, "config", "max_weight"), math.nan), True, r"max_weight.*nan"),
    ("epoch -5", _set(("state", "epoch"), -5), False, r"\['epoch'\] must be in .*-5"),
    ("round trip", lambda s: None, False, None),
]
for _name, _edit, _saved, _expect in _POLICY_LOADS:
    case(f"policy/load {_name}", "policies and guards",
         lambda p, e=_edit, u=_saved: p.load_state_dict(_policy_state(_guarded(), e), use_saved_config=u), _expect,
         make=_guarded)

def _guard_load(guard: Callable[[], Any], edit: Callable[[dict[str, Any]], None]) -> Callable[[Any], None]:
    def load(target: Any) -> None:
        state = copy.deepcopy(target.state_dict())
        edit(state)
        target.load_state_dict(state, num_samples=10)

    return load


_GUARD_LOADS: list[tuple[str, Callable[[], Any], Callable[[dict[str, Any]], None], str | None]] = [
    ("coverage overdue -1", hm.CoverageGuard, _set(("state", "overdue"), torch.tensor([-1])),
     r"\['overdue'\] must hold values >= 0, got -1"),
    ("coverage overdue 10", hm.CoverageGuard, _set(("state", "overdue"), torch.tensor([10])),
     r"\['overdue'\] must hold values < 10, got 10"),
    ("coverage overdue float", hm.CoverageGuard, _set(("state", "overdue"), torch.tensor([1.5])),
     r"\['overdue'\] must hold int64, got float32"),
    ("coverage starts [[1]]", hm.CoverageGuard, _set(("state", "starts"), [[1]]),
     r"\['starts'\] must be a list of \[int, int\] pairs, got \[\[1\]\]"),
    ("coverage mix nan", hm.CoverageGuard, _set(("config", "mix"), math.nan), r"mix: saved nan"),
    ("noise median nan", hm.NoiseGuard, _set(("state", "median"), math.nan), r"\['median'\] must be finite, got nan"),
    ("noise suspect int", hm.NoiseGuard, _set(("state", "suspect"), torch.tensor([1, 2])),
     r"\['suspect'\] must hold bool, got int64"),
    ("noise suspect length 3", hm.NoiseGuard, _set(("state", "suspect"), torch.tensor([True, False, True])),
     r"\['suspect'\] must have length 10 \(or 0\), got shape \(3,\)"),
    ("class_balance factor -1", hm.ClassBalance, _set(("state", "factor"), torch.tensor([-1.0])),
     r"\['factor'\] must hold values >= 0.0, got -1"),
    ("class_balance factor nan", hm.ClassBalance, _set(("state", "factor"), torch.tensor([math.nan])),
     r"\['factor'\] must be finite"),
    ("weight_cap named coverage", hm.WeightCap, _set(("name",), "coverage"),
     r"state is not a 'weight_cap' guard's state: got a dict named 'coverage'"),
    ("weight_cap extra state key", hm.WeightCap, _set(("state", "x"), 1),
     r"\['state'\] has keys \['x'\], expected \[\]"),
    ("weight_cap state_version 0", hm.WeightCap, _set(("state_version",), 0), r"state_version 0, expected 1"),
    ("weight_cap round trip", hm.WeightCap, lambda s: None, None),
]
for _name, _guard, _edit, _expect in _GUARD_LOADS:
    case(f"guard/load {_name}", "policies and guards", _guard_load(_guard, _edit), _expect, make=_guard)

case("policy/load None", "policies and guards", lambda p: p.load_state_dict(None),
     r"state must be a dict, got NoneType",
     make=_guarded)
case("policy/guards one object", "policies and guards", lambda _: hm.ImportancePolicy(guards=hm.WeightCap(10.0)), None)
case("policy/guards a generator", "policies and guards",
     lambda _: hm.ImportancePolicy(guards=(g for g in [hm.WeightCap(10.0)])), None)
case("policy/guards 5", "policies and guards", lambda _: hm.ImportancePolicy(guards=5),
     r"guards must be a list of Guard objects \(or one Guard\), got 5")
case("policy/guards 'cap'", "policies and guards", lambda _: hm.ImportancePolicy(guards="cap"),
     r"guards must be a list of Guard objects.*'cap'")
case("policy/guards [1]", "policies and guards", lambda _: hm.ImportancePolicy(guards=[1]),
     r"guards must hold Guard objects, got int")
case("policy/alpha -1", "policies and guards", lambda _: hm.ImportancePolicy(alpha=-1), r"alpha must be in .*got -1")
case("policy/WeightCap nan", "policies and guards", lambda _: hm.WeightCap(math.nan), r"max_weight.*nan")
case("policy/CoverageGuard mix 2", "policies and guards", lambda _: hm.CoverageGuard(mix=2.0), r"mix.*2.0")
case("policy/NoiseGuard method x", "policies and guards", lambda _: hm.NoiseGuard(method="x"), r"method.*'x'")
case("policy/build unknown", "policies and guards", lambda _: hm.build_policy("nope"), r"nope")


def _candidate_sampler() -> Any:
    sampler = hm.HardExampleSampler(hm.ScoreMemory(40), batch_size=4,
                                    policy=hm.build_policy("online_top_loss", candidates=2), seed=0)
    sampler.set_epoch(0)
    sampler.hostile_batch = next(iter(sampler))
    return sampler


case("sampler/online_top_loss weights() before update", "policies and guards",
     lambda s: s.weights(s.hostile_batch), r"weights of a candidate batch are decided by update\(\)",
     make=_candidate_sampler)
case("sampler/load None", "policies and guards", lambda s: s.load_state_dict(None), r"state must be a dict",
     make=lambda: hm.HardExampleSampler(hm.ScoreMemory(10), batch_size=2, seed=0))
case("sampler/update index 10", "policies and guards", lambda s: s.update(torch.tensor([10]), torch.ones(1)),
     r"indices out of range \[0, 10\).*= 10", make=lambda: hm.HardExampleSampler(hm.ScoreMemory(10), batch_size=2,
                                                                                 seed=0))
case("sampler/update meta loss", "policies and guards",
     lambda s: s.update(torch.tensor([1]), torch.ones(1, device="meta")),
     r"per_sample_loss is a meta tensor", make=lambda: hm.HardExampleSampler(hm.ScoreMemory(10), batch_size=2, seed=0))
case("sampler/update nan loss", "policies and guards", lambda s: s.update(torch.tensor([1]), torch.tensor([math.nan])),
     r"per_sample_loss has 1 non-finite value", make=lambda: hm.HardExampleSampler(hm.ScoreMemory(10), batch_size=2,
                                                                                   seed=0))


# ------------------------------------------------------------------------------------------------ retrieval
def _mine(**kw: Any) -> Any:
    from hardmine.retrieval import mine_hard_negatives

    g = np.random.default_rng(0)
    args = {"query_emb": g.standard_normal((6, 8)).astype(np.float32),
            "corpus_emb": g.standard_normal((40, 8)).astype(np.float32),
            "positives": [[i] for i in range(6)], "num_negatives": 3, "progress": False}
    return mine_hard_negatives(**{**args, **kw})


def _pool(**kw: Any) -> Any:
    import functools

    from hardmine.retrieval import mine_hard_negatives
    from hardmine.retrieval.pool import NegativePool

    g = np.random.default_rng(0)
    q, c = g.standard_normal((6, 8)).astype(np.float32), g.standard_normal((40, 8)).astype(np.float32)
    mine = functools.partial(mine_hard_negatives, positives=[[i] for i in range(6)], num_negatives=2, progress=False)
    args = {"num_queries": 6, "corpus_size": 40, "refresh_every": 1, **kw}
    return NegativePool(lambda ids: q[ids], lambda ids: c[ids], mine, **args)


def _pool_stepped() -> Any:
    pool = _pool()
    for step in range(3):
        pool.step(step)
    return pool


def _pool_bounded(_: Any) -> None:
    pool = _pool()
    pool.MAX_HISTORY = 4
    for step in range(10):
        pool.step(step)
    assert len(pool.history) == 4 and pool.refreshes == 10, (len(pool.history), getattr(pool, "refreshes", None))


def _pool_load(**changes: Any) -> Callable[[Any], None]:
    def load(pool: Any) -> None:
        state = pool.state_dict()
        state.update({k: v(state[k]) if callable(v) else v for k, v in changes.items()})
        pool.load_state_dict(state)

    return load


_RETRIEVAL: list[tuple[str, Callable[[Any], Any], str | None, Callable[[], Any]]] = [
    ("query 1-D", lambda _: _mine(query_emb=np.zeros(8, np.float32)),
     r"query_emb must be 2-D \[n, d\], got shape \(8,\)",
     lambda: None),
    ("corpus 1-D", lambda _: _mine(corpus_emb=np.zeros(40, np.float32)), r"corpus_emb must be 2-D", lambda: None),
    ("dims differ", lambda _: _mine(corpus_emb=np.ones((40, 3), np.float32)), r"corpus_emb.*3.*8|8.*3", lambda: None),
    ("query nan", lambda _: _mine(query_emb=np.full((6, 8), np.nan, np.float32)), r"query_emb.*(NaN|finite)",
     lambda: None),
    ("positives short", lambda _: _mine(positives=[[0]]), r"positives.*1.*6|6.*1", lambda: None),
    ("positive id 99", lambda _: _mine(positives=[[99]] * 6), r"positives.*99", lambda: None),
    ("num_negatives 0", lambda _: _mine(num_negatives=0), r"num_negatives must be >= 1, got 0", lambda: None),
    ("range_min -1", lambda _: _mine(range_min=-1), r"range_min must be >= 0, got -1", lambda: None),
    ("range_max <= range_min", lambda _: _mine(range_min=5, range_max=5), r"range_max must be > range_min = 5, got 5",
     lambda: None),
    ("relative_margin 2", lambda _: _mine(relative_margin=2.0), r"relative_margin must be in \[0.0, 1.0\], got 2.0",
     lambda: None),
    ("sampling 'x'", lambda _: _mine(sampling="x"), r"sampling must be .*'x'", lambda: None),
    ("index 'x'", lambda _: _mine(index="x"), r"index.*'x'", lambda: None),
    ("metric 'x'", lambda _: _mine(metric="x"), r"metric must be .*'x'", lambda: None),
    ("batch_size 0", lambda _: _mine(batch_size=0), r"batch_size must be >= 1, got 0", lambda: None),
    ("query meta", lambda _: _mine(query_emb=torch.ones(6, 8, device="meta")), r"query_emb is a meta tensor",
     lambda: None),
    ("num_negatives 1e9", lambda _: _mine(num_negatives=10**9),
     r"num_negatives=1000000000 needs [\d.]+ GiB .* more than this machine's", lambda: None),
    ("seed -1", lambda _: _mine(seed=-1), r"seed must be >= 0, got -1", lambda: None),
    ("seed 1.5", lambda _: _mine(seed=1.5), r"seed must be an int.*got 1.5", lambda: None),
    ("positives float ids", lambda _: _mine(positives=np.arange(6.0)), r"positives must hold integer ids.*float64",
     lambda: None),
    ("positives None", lambda _: _mine(positives=None), r"positives must be a list of id lists.*NoneType",
     lambda: None),
    ("exclude id 99", lambda _: _mine(exclude=[[99]] * 6), r"exclude\[0\] contains id 99", lambda: None),
    ("min_score above max_score", lambda _: _mine(min_score=1.0, max_score=0.0),
     r"min_score = 1.0 is above max_score = 0.0", lambda: None),
    ("corpus 1e30", lambda _: _mine(corpus_emb=np.full((40, 8), 1e30, np.float32)), r"corpus_emb row 0 is too large",
     lambda: None),
    ("float16 and tensors", lambda _: _mine(query_emb=torch.ones(6, 8, dtype=torch.float16)), None, lambda: None),
    ("valid", lambda _: _mine(), None, lambda: None),
    ("pool num_queries 0", lambda _: _pool(num_queries=0), r"num_queries must be >= 1, got 0", lambda: None),
    ("pool refresh_every 0", lambda _: _pool(refresh_every=0), r"refresh_every must be >= 1, got 0", lambda: None),
    ("pool drift_threshold 3", lambda _: _pool(drift_threshold=3.0),
     r"drift_threshold must be in \[0.0, 2.0\], got 3.0",
     lambda: None),
    ("pool negatives before step", lambda p: p.negatives([0]), r"the pool has no negatives yet", _pool),
    ("pool negatives id 6", lambda p: p.negatives([6]), r"query_ids out of range \[0, 6\).*= 6", _pool_stepped),
    ("pool step -1", lambda p: p.step(-1), r"step must be >= 0, got -1", _pool_stepped),
    ("pool start_from 1-D", lambda p: p.start_from(np.zeros(6, _I64)), r"indices must be an integer array \[6, n\]",
     _pool_stepped),
    ("pool start_from id 40", lambda p: p.start_from(np.full((6, 2), 40)), r"indices must be corpus ids in \[0, 40\)",
     _pool_stepped),
    ("pool load history 2000", _pool_load(history=lambda h: h * 700, refreshes=10**6),
     r"state\['history'\] holds 2100 reports, more than the 1000", _pool_stepped),
    ("pool load refreshes 1", _pool_load(refreshes=1), r"state\['refreshes'\] must be an integer >= 3.*got 1",
     _pool_stepped),
    ("pool load indices 40", _pool_load(indices=lambda t: t.fill_(40)), r"state\['indices'\] must hold values < 40",
     _pool_stepped),
    ("pool load history bad", _pool_load(history=[{"step": -1}]), r"state\['history'\]\[0\]", _pool_stepped),
    ("pool history bounded", _pool_bounded, None, lambda: None),
    ("pool load round trip", lambda p: p.load_state_dict(p.state_dict()), None, _pool_stepped),
]
for _name, _call, _expect, _make in _RETRIEVAL:
    case(f"retrieval/{_name}", "retrieval", _call, _expect, make=_make)


def _cli(*args: str, setup: Callable[[Path], None] = lambda d: None) -> None:
    from typer.testing import CliRunner

    from hardmine.cli import app

    folder = _tmp()
    g = np.random.default_rng(0)
    np.save(folder / "q.npy", g.standard_normal((6, 8)).astype(np.float32))
    np.save(folder / "c.npy", g.standard_normal((40, 8)).astype(np.float32))
    (folder / "qrels.tsv").write_text("".join(f"{i}\t{i}\n" for i in range(6)))
    setup(folder)
    options = {"--queries": "q.npy", "--corpus": "c.npy", "--qrels": "qrels.tsv", "--out": "out.jsonl"}
    given = dict(zip(args[::2], args[1::2]))
    argv = [str(x) for pair in {**options, **given}.items() for x in pair]
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(app, ["mine-negatives", *argv, "--no-progress"])
    finally:
        os.chdir(cwd)
    lines = result.output.strip().splitlines()
    if result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output:
        raise ValueError(lines[0])
    if result.exit_code != 0:
        raise AssertionError(f"exit code {result.exit_code}, {len(lines)} lines: {result.output[-300:]}")


_CLI: list[tuple[str, tuple[str, ...], Callable[[Path], None], str | None]] = [
    ("1-D query array", ("--queries", "q1.npy"), lambda d: np.save(d / "q1.npy", np.zeros(6, np.float32)),
     r"--queries q1.npy must hold a non-empty 2-D \[n, d\] array of numbers.*\(6,\)"),
    ("--num-negatives 0", ("--num-negatives", "0"), lambda d: None, r"--num-negatives must be >= 1, got 0"),
    ("--seed -1", ("--seed", "-1"), lambda d: None, r"--seed must be >= 0, got -1"),
    ("--out a directory", ("--out", "dir.jsonl"), lambda d: (d / "dir.jsonl").mkdir(),
     r"--out dir.jsonl is a directory"),
    ("--out in a new folder (created)", ("--out", "new/out.jsonl"), lambda d: None, None),
    ("truncated .npy", ("--queries", "t.npy"), lambda d: (d / "t.npy").write_bytes((d / "q.npy").read_bytes()[:90]),
     r"--queries t.npy cannot be read as a .npy array"),
    ("object .npy", ("--corpus", "o.npy"),
     lambda d: np.save(d / "o.npy", np.array([{}] * 40, dtype=object), allow_pickle=True),
     r"--corpus o.npy cannot be read as a .npy array"),
    ("--batch-size 0", ("--batch-size", "0"), lambda d: None, r"--batch-size must be >= 1, got 0"),
    ("missing qrels", ("--qrels", "nope.tsv"), lambda d: None, r"qrels file not found: nope.tsv"),
    ("valid", (), lambda d: None, None),
]
for _name, _args, _setup, _expect in _CLI:
    case(f"cli/mine-negatives {_name}", "retrieval", lambda _, a=_args, s=_setup: _cli(*a, setup=s), _expect)


# ------------------------------------------------------------------------------------------------ the test
def _param(c: Case) -> Any:
    marks = [pytest.mark.xfail(reason=c.known, strict=True)] if c.known else []
    return pytest.param(c, id=c.id, marks=marks)


@pytest.mark.parametrize("c", [_param(c) for c in CASES])
def test_hostile_input(c: Case) -> None:
    outcome, detail = outcome_of(c)
    expected = "accepted (valid)" if c.expect is None else "refused cleanly"
    assert outcome == expected, f"{outcome}: {detail}"


def test_enough_cases_in_each_category() -> None:
    counts: dict[str, int] = {}
    for c in CASES:
        counts[c.category] = counts.get(c.category, 0) + 1
    assert len(CASES) >= 150 and len({c.id for c in CASES}) == len(CASES)
    assert min(counts.values()) >= 10, counts
