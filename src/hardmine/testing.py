"""The public conformance suite: the checks every policy and guard of hardmine passes, for any user class.

    from hardmine.testing import check_policy, check_guard
    check_policy(MyPolicy)                      # a class (built with `params`) or an instance (copied per run)
    check_guard(MyGuard(), policies=["importance"])
    check_inbatch_loss(MyLoss, params={"keep": 0.5})
    check_miner(MyMiner)

Each check raises AssertionError naming what failed: parameter errors (unknown parameters refused by name, a bad
warm-up, a guard that is not a Guard), seeding (same seed same batches, another seed other batches, int64 indices
in range), exact resumption through a checkpoint file, epochs under a DataLoader, and state purity
(`state_dict()` twice gives the same and changes no later draw); for an in-batch loss, its reductions, gradients
and refusals. The helpers `fake_loss` and `run_steps` drive a
sampler like a training loop.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from hardmine.checkpoint import load_state, save_state
from hardmine.sampling.guards import GUARDS, Guard
from hardmine.sampling.memory import ScoreMemory
from hardmine.sampling.policies import POLICIES, Policy, build_policy
from hardmine.sampling.sampler import HardExampleSampler, WithIndex

NUM_SAMPLES, BATCH_SIZE = 103, 10
LABELS = np.where(np.arange(NUM_SAMPLES) % 10 == 0, 2, np.arange(NUM_SAMPLES) % 2)  # class 2 is rare


def policy_params(name: str, num_samples: int = NUM_SAMPLES) -> dict[str, Any]:
    """Parameters a registered policy needs to be built for a data set of `num_samples` (beyond its defaults):
    rho_loss's reference losses [num_samples]; {} for the others. `check_guard` builds policies with them."""
    if name == "rho_loss":
        return {"irreducible_loss": np.abs(np.cos(np.arange(num_samples) * 0.21))}
    return {}


def fake_loss(idx: np.ndarray, step: int) -> np.ndarray:
    """A deterministic stand-in for a model's per-sample loss [B] of samples `idx` [B] that changes with `step`."""
    return np.abs(np.sin(idx * 0.37 + step * 0.11)) * (1 + idx % 7)


def run_steps(sampler: HardExampleSampler, steps: int, start_step: int = 0) -> list[np.ndarray]:
    """Iterate the sampler like a training loop (re-entering iter() at epoch ends) for `steps` batches,
    recording fake losses and asking for the weights of every batch; returns the batches."""
    out, step = [], start_step
    while len(out) < steps:
        for batch in sampler:
            out.append(batch.copy())
            sampler.update(batch, fake_loss(batch, step))
            sampler.weights(batch)
            step += 1
            if len(out) == steps:
                break
    return out


PolicyLike = type[Policy] | Policy
"""What the checks take: a policy class (built with `params` and copies of `guards`) or an object (deep-copied)."""


class _Factory:
    """Fresh, identical policies from a class (with params and copies of guards) or an instance (deep copies)."""

    def __init__(self, policy: type[Policy] | Policy, params: dict[str, Any] | None, guards: Sequence[Guard]) -> None:
        if isinstance(policy, Policy):
            if params or guards:
                raise ValueError("params and guards go with a policy class; set them on a policy object")
            self.cls, self.instance = type(policy), policy
        elif isinstance(policy, type) and issubclass(policy, Policy):
            self.cls, self.instance = policy, None
        else:
            raise TypeError(f"policy must be a Policy subclass or instance, got {policy!r}")
        self.params, self.guards = dict(params or {}), tuple(guards)

    def __call__(self) -> Policy:
        if self.instance is not None:
            return copy.deepcopy(self.instance)
        return self.cls(**self.params, guards=[copy.deepcopy(g) for g in self.guards])

    def sampler(self, seed: int = 0, chunk: int | None = None) -> tuple[ScoreMemory, HardExampleSampler]:
        memory = ScoreMemory(NUM_SAMPLES, labels=LABELS)
        options = {} if chunk is None else {"chunk": chunk}
        return memory, HardExampleSampler(memory, BATCH_SIZE, policy=self(), seed=seed, **options)


def _raises(error: type[Exception], text: str, what: str, build: Any) -> None:
    try:
        build()
    except error as caught:
        assert text in str(caught), f"{what}: the {error.__name__} does not mention {text!r}: {caught}"
        return
    except Exception as caught:  # noqa: BLE001 - reported as a failed check
        raise AssertionError(f"{what}: raised {type(caught).__name__} ({caught}), expected {error.__name__}") from None
    raise AssertionError(f"{what}: nothing was raised, expected {error.__name__}")


def check_parameters(cls: type[Policy], params: dict[str, Any] | None = None) -> None:
    """Unknown parameters are refused by name, a negative warm-up and a guard that is not a Guard are refused."""
    params = dict(params or {})
    registered = bool(cls.name) and POLICIES.get(cls.name) is cls
    build = (lambda **kw: build_policy(cls.name, **params, **kw)) if registered else (lambda **kw: cls(**params, **kw))
    _raises(TypeError, "no_such_parameter", "an unknown parameter", lambda: build(no_such_parameter=1))
    if registered:
        _raises(TypeError, f"policy {cls.name!r}", "an unknown parameter's error names the policy",
                lambda: build(no_such_parameter=1))
    _raises(ValueError, "warmup", "warmup=-1", lambda: build(warmup=-1))
    _raises(TypeError, "guards", "a guard given by name", lambda: build(guards=["noise_guard"]))


def check_seeding(policy: PolicyLike, *, params: dict[str, Any] | None = None, guards: Sequence[Guard] = (),
                  steps: int = 25) -> None:
    """Same seed, same batches; another seed, other batches; int64 indices in [0, N)."""
    factory = _Factory(policy, params, guards)
    a = run_steps(factory.sampler(seed=3)[1], steps)
    b = run_steps(factory.sampler(seed=3)[1], steps)
    c = run_steps(factory.sampler(seed=4)[1], steps)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)), "the same seed drew different batches"
    assert not all(np.array_equal(x, y) for x, y in zip(a, c)), "another seed drew the same batches"
    assert all(x.dtype == np.int64 and x.min() >= 0 and x.max() < NUM_SAMPLES for x in a), \
        "batches must hold int64 indices in [0, N)"


def check_resume(policy: PolicyLike, *, params: dict[str, Any] | None = None, guards: Sequence[Guard] = (),
                 total: int = 30, stop: int = 14) -> None:
    """Stopping inside an epoch, saving sampler and memory to a file and loading them into a sampler built with
    another seed (taking the saved one with `use_saved_config=True`) continues with exactly the batches of an
    uninterrupted run; with chunks of one batch (every batch after the stop drawn by the restored policy) and
    of four (stopping inside a chunk)."""
    factory = _Factory(policy, params, guards)
    for chunk in (1, 4):
        reference = run_steps(factory.sampler(chunk=chunk)[1], total)
        memory, sampler = factory.sampler(chunk=chunk)
        first = run_steps(sampler, stop)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "ckpt.pt"
            save_state({"sampler": sampler.state_dict(), "memory": memory.state_dict()}, path)
            state = load_state(path)
        memory2, sampler2 = factory.sampler(seed=99, chunk=chunk)
        memory2.load_state_dict(state["memory"])
        sampler2.load_state_dict(state["sampler"], use_saved_config=True)  # the saved seed, asked for
        rest = run_steps(sampler2, total - stop, start_step=stop)
        for k, (x, y) in enumerate(zip(reference, first + rest)):
            assert np.array_equal(x, y), f"batch {k} differs after resuming (chunk={chunk})"


def check_dataloader(policy: PolicyLike, *, params: dict[str, Any] | None = None, guards: Sequence[Guard] = (),
                     epochs: int = 3) -> None:
    """Under DataLoader(batch_sampler=...), each epoch ends after len(sampler) batches of WithIndex items, and
    weights and stats answer."""
    factory = _Factory(policy, params, guards)
    data = TensorDataset(torch.arange(NUM_SAMPLES, dtype=torch.float32), torch.from_numpy(LABELS))
    memory, sampler = factory.sampler()
    loader = DataLoader(WithIndex(data), batch_sampler=sampler, num_workers=0)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        batches = 0
        for idx, x, y in loader:
            assert torch.equal(x, idx.float()) and torch.equal(y, torch.from_numpy(LABELS)[idx]), \
                "DataLoader items do not match their indices"
            sampler.update(idx, x / NUM_SAMPLES + 0.1)
            assert sampler.weights(idx).shape == idx.shape, "weights must have the batch's shape"
            batches += 1
        assert batches == len(sampler) >= 1, f"epoch {epoch} had {batches} batches, len(sampler) is {len(sampler)}"
    stats = sampler.stats()
    assert stats["epoch"] == epochs - 1 and 0 < stats["fraction_seen"] <= 1, f"stats are off: {stats}"


def check_purity(policy: PolicyLike, *, params: dict[str, Any] | None = None, guards: Sequence[Guard] = (),
                 steps: int = 12) -> None:
    """`state_dict()` asked twice gives the same, and asking for it does not change the next batches."""
    factory = _Factory(policy, params, guards)
    reference = run_steps(factory.sampler()[1], 2 * steps)
    memory, sampler = factory.sampler()
    first = run_steps(sampler, steps)
    one, two = sampler.state_dict(), sampler.state_dict()
    assert repr(one) == repr(two), "state_dict() changed the state"
    rest = run_steps(sampler, steps, start_step=steps)
    assert all(np.array_equal(x, y) for x, y in zip(reference, first + rest)), "state_dict() changed later draws"


def check_policy(policy: PolicyLike, *, params: dict[str, Any] | None = None, guards: Sequence[Guard] = ()) -> None:
    """Run every conformance check against a policy class (built with `params` and copies of `guards`) or a
    policy object (deep-copied for each run); AssertionError names the first check that fails."""
    _Factory(policy, params, guards)  # the arguments, checked once
    if isinstance(policy, type) and not guards:
        check_parameters(policy, params)
    for check in (check_seeding, check_resume, check_dataloader, check_purity):
        check(policy, params=params, guards=guards)


def _spy(guard: Guard) -> tuple[Guard, dict[str, list[Any]]]:
    """A copy of `guard` whose hooks record their outputs (hook -> list of outputs, in call order)."""
    spy, calls = copy.deepcopy(guard), {hook: [] for hook in guard.hooks()}

    def recording(hook: str, original: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            calls[hook].append(copy.deepcopy(out))
            return out
        return recorded

    for hook in guard.hooks():  # set on the object: `hooks()` reads the class, so the guard's hooks are unchanged
        setattr(spy, hook, recording(hook, getattr(spy, hook)))
    return spy, calls


def check_guard_effect(guard: Guard, policy: type[Policy], *, params: dict[str, Any] | None = None,
                       epochs: int = 3) -> None:
    """Run `policy` (a class accepting `guard`, built with `params`) with a recording copy of the guard through
    `epochs` epochs of a training loop that also asks for each batch's in-batch `selection`, and check that the
    guard takes effect: every hook it implements that the policy lists in `calls` is called, no other hook of it
    is called (the policy's `calls` is what its code calls), the samples its `adjust_selection` leaves out are
    left out of the batch's selection, and the batches of an epoch are drawn from the subset its
    `adjust_subset` returns."""
    spy, calls = _spy(guard)
    built = policy(**dict(params or {}), guards=[spy])
    where = f"guard {type(guard).__name__} on policy {policy.name or policy.__name__!r}"
    memory = ScoreMemory(NUM_SAMPLES, labels=LABELS)
    sampler = HardExampleSampler(memory, BATCH_SIZE, policy=built, seed=0)
    step = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        drawn, subsets = [], len(calls.get("adjust_subset", ()))
        for batch in sampler:
            if not drawn and "adjust_subset" in calls and len(calls["adjust_subset"]) > subsets:
                subsets = len(calls["adjust_subset"])
            drawn.append(batch.copy())
            sampler.update(batch, fake_loss(batch, step))
            sampler.weights(batch)
            before = len(calls.get("adjust_selection", ()))
            keep = sampler.selection(batch).numpy()
            for out in calls.get("adjust_selection", [])[before:]:
                left_out = batch[~np.asarray(out, dtype=bool) & keep]
                assert not left_out.size, f"{where}: adjust_selection left out samples {left_out.tolist()}, but the " \
                                          "batch's selection keeps them"
            step += 1
        if "adjust_subset" in calls and calls["adjust_subset"] and subsets:
            subset = np.asarray(calls["adjust_subset"][subsets - 1][0])
            outside = np.setdiff1d(np.concatenate(drawn), subset)
            assert not outside.size, f"{where}: epoch {epoch} drew samples {outside[:10].tolist()} that the " \
                                     "guard's adjust_subset left out"
    called = {hook for hook, outs in calls.items() if outs}
    never = sorted(guard.hooks() & built.calls - called)
    assert not never, f"{where}: the policy accepts the guard for {never} (its `calls`) but never calls them in " \
                      f"{epochs} epochs: the guard would do nothing"
    undeclared = sorted(called - built.calls)
    assert not undeclared, f"{where}: the policy calls {undeclared}, which its `calls` does not list"


def check_guard(guard: type[Guard] | Guard, *,
                policies: Sequence[str | type[Policy]] | None = None) -> None:
    """Run the checks of `check_policy` for the guard (a class, built without arguments, or an object) on each
    registered policy it has an effect on (or those named, or policy classes), check that it takes effect there
    (`check_guard_effect`: every hook of it the policy lists in `calls` is called, a sample it excludes is
    excluded), that the others refuse it, and that its state round-trips and a foreign state is refused."""
    if isinstance(guard, type):
        if not issubclass(guard, Guard):
            raise TypeError(f"guard must be a Guard subclass or instance, got {guard!r}")
        guard = guard()
    elif not isinstance(guard, Guard):
        raise TypeError(f"guard must be a Guard subclass or instance, got {guard!r}")
    assert guard.hooks(), f"{type(guard).__name__} implements none of the hooks"
    rebuilt = type(guard).from_state(guard.state_dict())
    assert repr(rebuilt) == repr(guard), f"state round trip gave {rebuilt!r}, expected {guard!r}"
    other = next((name for name in GUARDS if name != guard.name), "other")
    _raises(ValueError, "guard's state", "a foreign guard state", lambda: type(guard).from_state({"name": other}))
    names = sorted(POLICIES) if policies is None else list(policies)
    for name in names:
        cls = POLICIES[name] if isinstance(name, str) else name
        params = policy_params(name) if isinstance(name, str) else {}
        if cls.affected_by(guard):
            check_guard_effect(guard, cls, params=params)
            check_policy(cls, params=params, guards=[guard])
        else:
            _raises(ValueError, "has no effect", f"policy {name!r} without a hook of the guard",
                    lambda cls=cls: cls(guards=[copy.deepcopy(guard)]))


def check_inbatch_loss(loss: type[torch.nn.Module], *, params: dict[str, Any] | None = None,
                       num_classes: int = 4) -> None:
    """Check an in-batch loss class (an `nn.Module` with a `reduction` argument, built with `params`; a
    `base_loss` it requires is cross-entropy) on logits [B, num_classes] and int64 targets [B]: "none" gives
    one finite loss per sample and "sum" their sum, "mean" a finite scalar, the same inputs give the same loss
    and stay unchanged, the gradient of "mean" is finite and reaches the logits, and a bad `reduction`, an
    unknown parameter and non-finite logits are refused by name. The loss declares whether it selects samples
    (`selects`, as `hardmine.inbatch.InBatchLoss` asks), and the declaration holds: a loss that does not select
    gives a nonzero gradient to every sample; one that selects gives none to some and a gradient exactly to the
    samples whose "none" loss is not 0 (how `hardmine compare` finds the kept samples to count their compute)."""
    import inspect

    params = dict(params or {})
    selects = getattr(loss, "selects", None)
    assert isinstance(selects, bool), \
        f"{getattr(loss, '__name__', loss)!r} must declare whether it selects samples: subclass " \
        f"hardmine.inbatch.InBatchLoss and set selects = True or False (got selects={selects!r})"
    accepted = inspect.signature(loss.__init__).parameters
    if "base_loss" in accepted and accepted["base_loss"].default is inspect.Parameter.empty:
        params.setdefault("base_loss", torch.nn.CrossEntropyLoss(reduction="none"))
    name = getattr(loss, "__name__", repr(loss))
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, num_classes, generator=generator, dtype=torch.float64) * 2
    targets = torch.arange(12) % num_classes
    before = logits.clone()
    none = loss(**params, reduction="none")(logits, targets)
    assert none.shape == targets.shape and bool(torch.isfinite(none).all()), \
        f"{name}: reduction='none' must give one finite loss per sample {tuple(targets.shape)}, got {none}"
    total = loss(**params, reduction="sum")(logits, targets)
    assert torch.allclose(total, none.sum()), \
        f"{name}: reduction='sum' gave {total}, the per-sample sum is {none.sum()}"
    again = loss(**params, reduction="none")(logits, targets)
    assert torch.equal(none, again), f"{name}: the same inputs gave another loss"
    assert torch.equal(logits, before), f"{name}: changed its input in place"
    leaf = logits.clone().requires_grad_(True)
    mean = loss(**params, reduction="mean")(leaf, targets)
    assert mean.dim() == 0 and bool(torch.isfinite(mean)), f"{name}: reduction='mean' must give a finite scalar"
    mean.backward()
    assert leaf.grad is not None and bool(torch.isfinite(leaf.grad).all()) and bool(leaf.grad.abs().sum() > 0), \
        f"{name}: the gradient of the mean loss must be finite and reach the logits"
    reached = leaf.grad.abs().sum(dim=1) > 0  # per sample

    def rows(mask: torch.Tensor) -> list[int]:
        return torch.nonzero(mask).flatten().tolist()

    if selects:
        assert not bool(reached.all()), \
            f"{name} declares selects=True but every sample of the batch got a gradient: it keeps them all"
        kept = none != 0
        assert torch.equal(reached, kept), \
            f"{name} declares selects=True: the samples with a gradient {rows(reached)} must " \
            f"be those whose reduction='none' loss is not 0 {rows(kept)}"
    else:
        assert bool(reached.all()), \
            f"{name} declares selects=False but samples {rows(~reached)} got no gradient: " \
            "a loss that drops samples declares selects = True (compare then counts only the kept ones' compute)"
    _raises(ValueError, "reduction", "reduction='average'", lambda: loss(**params, reduction="average"))
    _raises(TypeError, "no_such_parameter", "an unknown parameter", lambda: loss(**params, no_such_parameter=1))
    bad = logits.clone()
    bad[0, 0] = float("nan")
    _raises(ValueError, "non-finite", "NaN logits", lambda: loss(**params, reduction="mean")(bad, targets))


def check_miner(miner: Any, *, params: dict[str, Any] | None = None, num_classes: int = 4,
                per_class: int = 4) -> None:
    """Check a miner (a `hardmine.metric.BaseMiner` class, built with `params`, or any miner object called as
    `miner(embeddings, labels, ref_emb=None, ref_labels=None)`) on small real inputs: embeddings [B, 8] of
    `num_classes` classes with `per_class` samples each, mined against themselves and against a reference of
    another size. Its output must be `arity` (3: (anchor, positive, negative); 4: (anchor1, positive, anchor2,
    negative)) 1-D int64 tensors of equal lengths (per pair for pair miners), anchors in [0, B), the others in
    [0, M), every positive of the anchor's label and never the anchor itself, every negative of another label,
    and no negative at all in a batch of one class. AssertionError names the first problem (an index out of
    range included)."""
    from hardmine.metric.base import BaseMiner, check_mined

    if isinstance(miner, type):
        if not issubclass(miner, BaseMiner):
            raise TypeError(f"miner must be a BaseMiner subclass or a miner object, got {miner!r}")
        miner = miner(**dict(params or {}))
    elif params:
        raise ValueError("params go with a miner class; build the miner object with them")
    if not callable(miner):
        raise TypeError(f"miner must be a BaseMiner subclass or a callable miner object, got {miner!r}")
    name = type(miner).__name__
    generator = torch.Generator().manual_seed(0)
    size = num_classes * per_class
    x = torch.nn.functional.normalize(torch.randn(size, 8, generator=generator), dim=1)
    y = torch.arange(size) % num_classes
    ref = torch.nn.functional.normalize(torch.randn(size + 5, 8, generator=generator), dim=1)
    ref_y = torch.arange(size + 5) % num_classes
    arity = getattr(miner, "arity", None)

    def mined(what: str, *args: Any) -> tuple[torch.Tensor, ...]:
        nonlocal arity
        try:
            out = miner(*args)
        except Exception as error:  # noqa: BLE001 - reported as a failed check
            raise AssertionError(f"{name} on {what}: {type(error).__name__}: {error}") from None
        if arity is None:
            arity = len(out) if isinstance(out, (tuple, list)) and len(out) in (3, 4) else 3
        num_ref = (args[2] if len(args) > 2 else args[0]).shape[0]
        try:
            return check_mined(out, arity, args[0].shape[0], num_ref, f"{name} on {what}")
        except ValueError as error:
            raise AssertionError(str(error)) from None

    for what, args in (("a batch", (x, y)), ("a reference", (x, y, ref, ref_y))):
        out = mined(what, *args)
        labels, ref_labels, own = args[1], args[-1], len(args) == 2
        anchors, positives = out[0], out[1]
        negative_anchors, negatives = (out[0], out[2]) if arity == 3 else (out[2], out[3])
        assert bool((labels[anchors] == ref_labels[positives]).all()), \
            f"{name} on {what}: a positive has another label than its anchor"
        assert not own or not bool((anchors == positives).any()), f"{name} on {what}: an anchor is its own positive"
        assert bool((labels[negative_anchors] != ref_labels[negatives]).all()), \
            f"{name} on {what}: a negative has its anchor's label"
        assert any(t.numel() for t in out), f"{name} on {what}: mined nothing from {num_classes} classes"
    one = mined("a batch of one class", x, torch.zeros(size, dtype=torch.int64))
    assert one[2 if arity == 3 else 3].numel() == 0, f"{name}: found negatives in a batch of one class"
