"""Schedules: values along training, errors, and rebuilding from state."""

import math

import pytest

from hardmine.sampling.schedules import Constant, Cosine, Linear, Step, as_schedule, schedule_from_state


def test_values_along_training():
    linear = Linear(0.4, 1.0, epochs=3, begin=1)
    assert [linear(e) for e in (0, 1, 2.5, 4, 9)] == pytest.approx([0.4, 0.4, 0.7, 1.0, 1.0])
    assert [Cosine(1.0, 0.0, epochs=2)(e) for e in (0, 1, 2, 3)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert [Step(0.5, 2.0, every=2, high=3.0)(e) for e in (0, 1.9, 2, 4, 6)] == [0.5, 0.5, 1.0, 2.0, 3.0]
    assert Constant(3)(100) == 3.0 and as_schedule("x", 2.0) == Constant(2.0)


@pytest.mark.parametrize("schedule", [Constant(1.5), Linear(0.0, 2.0, 5.0), Cosine(3.0, 1.0, 2.0, begin=1.0),
                                      Step(1.0, 0.5, 3.0, low=0.1)])
def test_state_round_trip(schedule):
    rebuilt = schedule_from_state(schedule.state_dict())
    assert rebuilt == schedule and [rebuilt(e) for e in range(8)] == [schedule(e) for e in range(8)]


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="epochs"):
        Linear(0, 1, epochs=0)
    with pytest.raises(ValueError, match="value"):
        Constant(math.nan)
    with pytest.raises(TypeError, match="alpha must be a number or a Schedule"):
        as_schedule("alpha", "fast")
    with pytest.raises(ValueError, match="schedule must be one of"):
        schedule_from_state({"schedule": "zigzag"})
    with pytest.raises(ValueError, match="low must be <= high"):
        Step(1.0, 2.0, low=2.0, high=1.0)
