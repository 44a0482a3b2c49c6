"""One registry mechanism: registration by subclassing under a short name, lookup errors that list the names."""

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
    things.add("b", int)
    things.add("a", float)
    with pytest.raises(ValueError, match=r"thing must be one of \['a', 'b'\], got 'c'"):
        things["c"]
    assert things.get("c") is None  # a Mapping: .get and `in` work without raising


def test_a_second_item_under_a_taken_name_is_refused():
    things = Registry("thing")
    things.add("a", int)
    with pytest.raises(ValueError, match="'a' is already registered"):
        things.add("a", float)
    with pytest.raises(ValueError, match="non-empty string"):
        things.add("", float)

    class Thing(Registered):
        registry = things

    with pytest.raises(ValueError, match="'a' is already registered"):
        class Other(Thing):
            name = "a"


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


@pytest.mark.parametrize("registry", [
    hm.POLICIES, hm.GUARDS, hm.LOSSES, hm.SELECTORS, hm.schedules.SCHEDULES, hm.metric.MINERS,
    hm.metric.DISTANCES, hm.retrieval.backends.BACKENDS, MODELS, hm.datasets.DATASETS])
def test_every_registered_item_is_a_registered_subclass_under_its_own_name(registry):
    """One registration style: each entry is a `Registered` subclass whose `name` is its key (no decorators)."""
    assert not hasattr(registry, "register")
    for name, item in registry.items():
        assert isinstance(item, type) and issubclass(item, Registered), (name, item)
        assert item.name == name and item.registry is registry


def test_models_and_datasets_build_from_their_names():
    import torch

    model = MODELS["mlp"].build((1, 8, 8), 10, 16)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    data = hm.datasets.DATASETS["digits"].load(None, 0.25, 0)
    assert data.x_train.shape[0] + data.x_test.shape[0] == 1797
