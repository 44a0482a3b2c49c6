"""Strategy specs from text: parameters, guards, lists, canonical labels and errors."""

import pytest

from hardmine.experiments.spec import parse_spec, parse_specs, parse_value, split_specs


def test_spec_with_parameters_and_guards():
    spec = parse_spec("importance:mix=0.2,alpha=0.7+noise_guard:method=aum+weight_cap")
    assert spec.strategy.name == "importance" and spec.strategy.params == {"alpha": 0.7, "mix": 0.2}
    assert [(g.name, g.params) for g in spec.guards] == [("noise_guard", {"method": "aum"}), ("weight_cap", {})]
    assert spec.label == "importance:alpha=0.7,mix=0.2+noise_guard:method=aum+weight_cap"


def test_values_are_typed():
    assert [parse_value(v) for v in ("3", "0.5", "1e-3", "true", "False", "none", "aum")] == \
        [3, 0.5, 1e-3, True, False, None, "aum"]


def test_key_value_items_continue_the_last_part():
    text = "uniform,importance:alpha=0.7,mix=0.2,ohem+noise_guard,min_visits=2,focal"
    assert split_specs(text) == ["uniform", "importance:alpha=0.7,mix=0.2", "ohem+noise_guard:min_visits=2", "focal"]
    specs = parse_specs(text)
    assert [s.label for s in specs] == ["uniform", "importance:alpha=0.7,mix=0.2", "ohem+noise_guard:min_visits=2",
                                        "focal"]


@pytest.mark.parametrize("text, message", [
    ("", "no strategy"),
    ("alpha=3,uniform", "before any strategy"),
    ("importance:alpha", "write key=value"),
    ("importance:alpha=1,alpha=2", "given twice"),
    ("uniform,uniform", "strategy given twice"),
    ("ohem+noise_guard+noise_guard", "guard is given twice"),
    ("9lives", "bad strategy or guard name"),
])
def test_bad_specs_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_specs(text)
