"""One state protocol: pure state_dict(), validate-then-assign load_state_dict(), a state_version everywhere."""

import importlib
import inspect
import pkgutil
from pathlib import Path

import numpy as np
import pytest
import torch

import hardmine as hm
from hardmine import testing
from hardmine.sampling.schedules import Linear, schedule_from_state
from hardmine.state import Array, Choice, Int, Stateful, check_state, from_saved, to_saved


def test_conversion_round_trips_nested_values():
    value = {"a": np.arange(3), "b": [np.ones(2, dtype=np.float32), 4], "c": "text"}
    saved = to_saved(value)
    assert isinstance(saved["a"], torch.Tensor) and isinstance(saved["b"][0], torch.Tensor)
    back = from_saved(saved)
    assert np.array_equal(back["a"], value["a"]) and back["b"][1] == 4 and back["c"] == "text"
    saved["a"][0] = 99  # a copy: the source is untouched
    assert value["a"][0] == 0


def test_check_state_names_the_owner_the_version_and_the_missing_keys():
    with pytest.raises(TypeError, match="thing state must be a dict"):
        check_state([], "thing", 1, ())
    with pytest.raises(ValueError, match=r"thing state is missing keys \['state_version'\]"):
        check_state({}, "thing", 1, ())
    with pytest.raises(ValueError, match="thing state has state_version 2, expected 1"):
        check_state({"state_version": 2}, "thing", 1, ())
    with pytest.raises(ValueError, match=r"missing keys \['b'\]"):
        check_state({"state_version": 1, "a": 0}, "thing", 1, ("a", "b"))


def _steps(sampler, memory, steps):
    for _, batch in zip(range(steps), sampler):
        sampler.update(batch, np.linspace(0.1, 1.0, batch.size))


@pytest.mark.parametrize("policy", sorted(hm.POLICIES))
def test_state_dict_is_pure_and_carries_a_version(policy):
    memory = hm.ScoreMemory(40, labels=np.arange(40) % 2)
    sampler = hm.HardExampleSampler(memory, 8, policy=hm.build_policy(policy, **testing.policy_params(policy, 40)),
                                    seed=0)
    _steps(sampler, memory, 7)
    first, second = sampler.state_dict(), sampler.state_dict()
    assert repr(first) == repr(second)  # asking twice changes nothing
    assert first["state_version"] == 2 and first["policy"]["state_version"] == 1
    assert memory.state_dict()["state_version"] == 1


def test_a_bad_policy_state_changes_nothing():
    memory = hm.ScoreMemory(40)
    sampler = hm.HardExampleSampler(memory, 8, policy=hm.SelectiveBackpropPolicy(), seed=0)
    _steps(sampler, memory, 3)
    before = repr(sampler.state_dict())
    state = sampler.state_dict()
    state["policy"]["selector"] = {"history": torch.zeros(3)}
    with pytest.raises(ValueError, match="state is missing|history|state_version"):
        sampler.load_state_dict(state)
    state = sampler.state_dict()
    state["policy"]["state_version"] = 0
    with pytest.raises(ValueError, match="state_version 0, expected 1"):
        sampler.load_state_dict(state)
    assert repr(sampler.state_dict()) == before


def test_loading_keeps_the_guard_objects_the_caller_holds():
    memory = hm.ScoreMemory(40, labels=np.arange(40) % 2)
    guard = hm.NoiseGuard(min_visits=1)
    sampler = hm.HardExampleSampler(memory, 8, policy=hm.ImportancePolicy(guards=[guard]), seed=0)
    _steps(sampler, memory, 6)
    other_guard = hm.NoiseGuard(min_visits=1)
    other = hm.HardExampleSampler(hm.ScoreMemory(40, labels=np.arange(40) % 2), 8,
                                  policy=hm.ImportancePolicy(guards=[other_guard]), seed=0)
    other.load_state_dict(sampler.state_dict())
    assert other.policy.guards[0] is other_guard
    assert np.array_equal(other_guard.suspects(), guard.suspects())


# ---- the Stateful base itself


class Tally(Stateful):
    """A small stateful class: per-sample counts [N] and a total, with a fixed size and a free rate."""

    state_fields = {"counts": Array("int64", "N", low=0), "total": Int(0), "mode": Choice("sum", "max")}
    config_fixed = ("num_samples",)

    def __init__(self, num_samples: int, rate: float = 0.5) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.num_samples, self.rate = num_samples, rate
        self.counts = np.zeros(num_samples, dtype=np.int64)
        self.total, self.mode = 0, "sum"
        self.loaded = 0

    def _state_sizes(self):
        return {"N": self.num_samples}

    def _check_state(self, values, state):
        if values["counts"].sum() != values["total"]:
            raise ValueError(f"Tally state['total'] is {values['total']}, the counts sum to {values['counts'].sum()}")
        return values

    def _after_load(self):
        self.loaded += 1

    def add(self, index):
        self.counts[index] += 1
        self.total += 1


def _tally():
    tally = Tally(5)
    for i in (0, 3, 3):
        tally.add(i)
    return tally


def test_the_base_saves_fields_config_and_version_and_round_trips():
    state = _tally().state_dict()
    assert set(state) == {"config", "counts", "total", "mode", "state_version"}
    assert state["config"] == {"num_samples": 5, "rate": 0.5} and state["state_version"] == 1
    assert isinstance(state["counts"], torch.Tensor)
    other = Tally(5)
    other.load_state_dict(state)
    assert other.counts.tolist() == [1, 0, 0, 2, 0] and other.total == 3 and other.loaded == 1
    state["counts"][0] = 9  # the state is a copy
    assert other.counts[0] == 1


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.pop("total"), r"Tally state is missing keys \['total'\]"),
    (lambda s: s.update(extra=1), r"Tally state holds unknown keys \['extra'\]"),
    (lambda s: s.update(counts=torch.ones(5)), r"state\['counts'\] must hold int64, got float32"),
    (lambda s: s.update(counts=torch.ones(4, dtype=torch.int64)), r"state\['counts'\] must have length 5, got shape"),
    (lambda s: s.update(counts=torch.full((5,), -1)), r"state\['counts'\] must hold values >= 0, got -1"),
    (lambda s: s.update(total=-2), r"state\['total'\] must be in \[0, None\], got -2"),
    (lambda s: s.update(total=2.0), r"state\['total'\] must be an integer, got 2.0"),
    (lambda s: s.update(mode="min"), r"state\['mode'\] must be one of \['sum', 'max'\], got 'min'"),
    (lambda s: s.update(state_version=2), r"Tally state has state_version 2, expected 1"),
    (lambda s: s.update(total=4), r"state\['total'\] is 4, the counts sum to 3"),
    (lambda s: s["config"].update(rate=0.7), r"rate: saved 0.7, constructed with 0.5"),
    (lambda s: s["config"].pop("rate"), r"state\['config'\] has keys \['num_samples'\], expected"),
])
def test_a_bad_state_is_refused_naming_the_field_and_the_object_is_unchanged(edit, message):
    tally = _tally()
    state = _tally().state_dict()
    state["counts"] = torch.tensor([0, 1, 1, 0, 1])  # a valid state unlike the object's
    edit(state)
    before = repr(tally.state_dict())
    with pytest.raises(ValueError, match=message):
        tally.load_state_dict(state)
    assert repr(tally.state_dict()) == before and tally.loaded == 0


def test_the_config_derived_from_the_signature_is_compared_unless_the_saved_one_is_asked_for():
    state = _tally().state_dict()
    other = Tally(5, rate=2.0)
    with pytest.raises(ValueError, match=r"rate: saved 0.5, constructed with 2.0.*use_saved_config=True"):
        other.load_state_dict(state)
    assert other.rate == 2.0 and other.total == 0
    other.load_state_dict(state, use_saved_config=True)
    assert other.rate == 0.5 and other.total == 3
    with pytest.raises(ValueError, match="num_samples: saved 5, constructed with 6"):  # fixed: always compared
        Tally(6).load_state_dict(state, use_saved_config=True)
    state["config"]["rate"] = -1.0  # a saved argument the constructor refuses
    with pytest.raises(ValueError, match=r"Tally state\['config'\]: rate must be > 0, got -1.0"):
        other.load_state_dict(state, use_saved_config=True)
    assert other.rate == 0.5


def test_a_subclass_argument_is_saved_without_writing_anything():
    class Scaled(Tally):
        def __init__(self, scale: float = 2.0, **base):
            super().__init__(**base)
            self.scale = scale

    state = Scaled(num_samples=5, scale=3.0).state_dict()
    assert state["config"] == {"scale": 3.0, "num_samples": 5, "rate": 0.5}
    with pytest.raises(ValueError, match="scale: saved 3.0, constructed with 2.0"):
        Scaled(num_samples=5).load_state_dict(state)

    class Forgetful(Tally):
        def __init__(self, width: int = 3, **base):  # never stores width
            super().__init__(**base)

    with pytest.raises(AttributeError, match="Forgetful stores no attribute 'width'.*constructor argument"):
        Forgetful(num_samples=5).state_dict()


def test_children_load_in_the_same_step_and_an_undeclared_entry_is_refused():
    class Holder(Stateful):
        state_fields = {"steps": Int(0)}
        state_in = "_state"
        state_children = {"parts": "parts"}

        def __init__(self, size: int = 5) -> None:
            self.size, self.parts, self._state = size, [Tally(size), Tally(size)], {"steps": 0}

    holder = Holder()
    holder.parts[1].add(4)
    holder._state["steps"] = 7
    state = holder.state_dict()
    assert state["parts"][1]["total"] == 1
    fresh = Holder()
    state["parts"][1]["total"] = 2  # the second child's state is bad: nothing is assigned, the parent's neither
    with pytest.raises(ValueError, match=r"total'\] is 2"):
        fresh.load_state_dict(state)
    assert fresh._state["steps"] == 0 and fresh.parts[0].loaded == 0
    state["parts"][1]["total"] = 1
    fresh.load_state_dict(state)
    assert fresh._state["steps"] == 7 and fresh.parts[1].counts[4] == 1
    fresh._state["cache"] = 1  # an entry not declared in state_fields would be lost at resume: refused
    with pytest.raises(RuntimeError, match=r"holds \['cache', 'steps'\].*declare"):
        fresh.state_dict()


def test_a_schedule_round_trips_through_the_base_and_its_flat_form():
    schedule = Linear(0.4, 1.0, epochs=5)
    assert schedule.to_config() == {"schedule": "linear", "start": 0.4, "end": 1.0, "epochs": 5.0, "begin": 0.0}
    assert schedule_from_state(schedule.state_dict()) == schedule == schedule_from_state(schedule.to_config())
    with pytest.raises(ValueError, match="end: saved 1.0, constructed with 2.0"):
        Linear(0.4, 2.0, epochs=5).load_state_dict(schedule.state_dict())


# ---- conformance: every class with state in the package uses the base

FRAMEWORK_ADAPTERS = {
    # Lightning's Callback API: `state_dict` / `load_state_dict` are the hooks Lightning calls to checkpoint it
    "hardmine.integrations.lightning.HardMiningCallback":
        "Lightning calls Callback.state_dict/load_state_dict; it holds a state until the sampler exists",
    "hardmine.integrations.lightning_stream.HardStreamCallback":
        "Lightning calls Callback.state_dict/load_state_dict; it holds the stream's state until fit starts",
}
PENDING: dict[str, str] = {
    # a class with state not yet on the base, with the reason (none since issues 23 and 25: the sampler, its ledger
    # and the memory were converted with their saved layouts unchanged, the streams when they were new)
}


def _stateful_classes():
    found = {}
    for module in pkgutil.walk_packages(hm.__path__, "hardmine."):
        if module.name.startswith("hardmine.cli.__main__"):
            continue
        try:
            loaded = importlib.import_module(module.name)
        except ModuleNotFoundError as error:  # the detection extra: its classes are torch.nn.Modules (extra state
            if error.name != "torchvision":    # through get_extra_state), tested in .venv-vision
                raise
            continue
        for _, cls in inspect.getmembers(loaded, inspect.isclass):
            if cls.__module__ == module.name and any(_ours(cls, m) for m in ("state_dict", "load_state_dict")):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def _ours(cls, method):
    """Whether `method` of `cls` is written in hardmine (not torch.nn.Module's, which a loss inherits)."""
    owner = next((k for k in cls.__mro__ if method in vars(k)), None)
    return owner is not None and owner.__module__.startswith("hardmine")


def test_every_class_with_state_uses_the_base_or_is_a_named_exception():
    found = _stateful_classes()
    assert "hardmine.sampling.policies.importance.ImportancePolicy" in found  # the walk sees the package
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, Stateful)
                     and name not in FRAMEWORK_ADAPTERS and name not in PENDING)
    assert outside == [], f"classes with state that do not use hardmine.state.Stateful: {outside}"
    stale = sorted(name for name in (*FRAMEWORK_ADAPTERS, *PENDING)
                   if name not in found or issubclass(found[name], Stateful))
    assert stale == [], f"the allow-list names classes that are gone or converted: {stale}"


def test_load_state_dict_is_written_once_plus_the_framework_and_pending_ones():
    root = Path(hm.__file__).parent
    written = sorted(str(path.relative_to(root)) for path in root.rglob("*.py")
                     for line in path.read_text().splitlines() if line.lstrip().startswith("def load_state_dict"))
    allowed = {"state.py", "integrations/lightning.py",  # the base and Lightning's Callback API
               "integrations/lightning_stream.py"}
    assert set(written) <= allowed and "state.py" in written, written


def test_a_part_saved_inside_its_owner_s_state_has_no_version_of_its_own():
    from hardmine.sampling.ledger import Ledger

    sampler = hm.HardExampleSampler(hm.ScoreMemory(30), batch_size=4, policy="importance", seed=0, chunk=3)
    next(iter(sampler))
    drawn = sampler.state_dict()["drawn"]
    assert isinstance(sampler.ledger, Stateful) and Ledger.state_version is None
    assert sorted(drawn) == ["consumed", "indices", "positions", "weights"]  # the layout before the base
    with pytest.raises(ValueError, match=r"state\['drawn'\].*must increase"):
        Ledger().load_state_dict({**drawn, "consumed": 2})
    ledger = Ledger()
    ledger.load_state_dict(drawn, num_samples=30)
    assert ledger.stored_from(0) is not None and len(ledger.stored_from(0)[0]) == 3
