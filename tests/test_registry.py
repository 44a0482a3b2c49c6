"""One registry mechanism: registration by subclassing or one decorator, lookup errors that list the names."""

import pytest

import hardmine as hm
from hardmine.experiments.models import MODELS
from hardmine.registry import Registered, Registry


def test_subclassing_with_a_name_registers_and_abstract_bases_do_not():
    things = Registry("thing")

    class Thing(Registered):
        registry = things

    class Apple(Thing):
        name = "apple"

    class Plain(Apple):  # inherits the name but does not set one: not registered again
        pass

    assert dict(things) == {"apple": Apple} and "apple" in things and len(things) == 1
    assert things["apple"] is Apple


def test_lookup_error_lists_the_names_and_is_a_value_error():
    things = Registry("thing")
    things.register("b")(int)
    things.register("a")(float)
    with pytest.raises(ValueError, match=r"thing must be one of \['a', 'b'\], got 'c'"):
        things["c"]
    assert things.get("c") is None  # a Mapping: .get and `in` work without raising


def test_a_second_item_under_a_taken_name_is_refused():
    things = Registry("thing")
    things.register("a")(int)
    with pytest.raises(ValueError, match="'a' is already registered"):
        things.register("a")(float)
    with pytest.raises(ValueError, match="non-empty string"):
        things.register("")(float)


@pytest.mark.parametrize("registry, kind, known", [
    (hm.POLICIES, "policy", "importance"), (hm.GUARDS, "guard", "noise_guard"), (hm.LOSSES, "in-batch loss", "ohem"),
    (hm.SELECTORS, "selector", "top_k"), (hm.schedules.SCHEDULES, "schedule", "linear"),
    (hm.metric.MINERS, "miner", "batch_hard"), (hm.metric.DISTANCES, "distance", "cosine"),
    (hm.retrieval.backends.BACKENDS, "index", "hnsw"), (MODELS, "model", "mlp"),
    (hm.datasets.DATASETS, "dataset", "digits")])
def test_every_library_registry_is_one_mechanism(registry, kind, known):
    assert isinstance(registry, Registry) and known in registry
    with pytest.raises(ValueError, match=f"{kind} must be one of .*'{known}'.*got 'nope'"):
        registry["nope"]
