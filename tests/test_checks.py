"""The shared argument checks: each names the argument and the bad value, and refuses bools."""

import math

import numpy as np
import pytest

from hardmine._checks import check_finite, check_int, check_number


def test_check_int():
    assert check_int("n", np.int64(3)) == 3 and check_int("n", 0, minimum=0) == 0
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int("n", 0)
    with pytest.raises(TypeError, match="n must be an integer, got True"):
        check_int("n", True)


def test_check_number_over_an_interval_or_any_finite_number():
    assert check_number("x", 1) == 1.0 and check_number("x", -1e300) == -1e300
    with pytest.raises(ValueError, match=r"x must be in \(0.0, 1.0\], got 0.0"):
        check_number("x", 0.0, 0.0, 1.0, low_inclusive=False)
    with pytest.raises(ValueError, match="x must be in"):
        check_number("x", math.nan)
    with pytest.raises(TypeError, match="x must be a number"):
        check_number("x", "1")


@pytest.mark.parametrize("value, minimum, message", [
    (-1, 0, "gamma must be a finite number >= 0, got -1"), (math.inf, None, "gamma must be a finite number, got inf"),
    (True, None, "got True"), ("2", None, "got '2'"), (0.5, 1, ">= 1, got 0.5")])
def test_check_finite(value, minimum, message):
    with pytest.raises(ValueError, match=message):
        check_finite("gamma", value, minimum)
    assert check_finite("gamma", np.float32(2.5), 0) == 2.5


def test_check_choice_returns_the_value_or_names_the_choices():
    from hardmine.checks import check_choice

    assert check_choice("rule", "top", ("top", "random")) == "top"
    with pytest.raises(ValueError, match=r"^rule must be one of \['top', 'random'\], got 'best'$"):
        check_choice("rule", "best", ("top", "random"))
    with pytest.raises(ValueError, match=r"^index must be one of \['exact'\] or a SearchBackend, got 3$"):
        check_choice("index", 3, ["exact"], "a SearchBackend")
    with pytest.raises(ValueError, match="got True"):  # equal to 1 but not of the choices' type
        check_choice("flag", True, (1, 2))
    with pytest.raises(ValueError, match=r"got \['top'\]"):  # unhashable: compared, never hashed
        check_choice("rule", ["top"], ("top",))


def test_check_int_maximum():
    assert check_int("n", 5, maximum=5) == 5
    with pytest.raises(ValueError, match="^n must be at most 5, got 6$"):
        check_int("n", 6, maximum=5)


def test_cross_batch_memory_step_is_bounded_by_int64():
    import torch

    from hardmine.metric import CrossBatchMemory

    memory = CrossBatchMemory(4, 2)
    with pytest.raises(ValueError, match="step must be at most 9223372036854775807, got 9223372036854775808"):
        memory.enqueue(torch.zeros(1, 2), [0], 2**63)
    assert len(memory) == 0
