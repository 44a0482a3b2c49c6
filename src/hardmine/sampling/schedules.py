"""Schedules: a parameter as a function of training progress, measured in epochs (a float: 2.5 is mid-epoch 2).

Every policy parameter that the literature anneals (importance's alpha and beta, rank's selection pressure,
prune_easy's ratio, a curriculum's fraction, self-paced learning's threshold) accepts a number or a Schedule.
Policies evaluate them at the start of each epoch, so a schedule is O(1) per epoch.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from hardmine._checks import check_number
from hardmine.registry import Registered, Registry
from hardmine.state import Stateful

SCHEDULES = Registry("schedule")
"""Every Schedule class with a `name`, registered by subclassing."""


class Schedule(Registered, Stateful):
    """A value as a function of progress in epochs; subclasses implement `__call__` and set `name` to register,
    and store each constructor argument as the attribute of its name.

    A schedule has no state that changes: its `state_dict()` is its name and configuration (derived from the
    signature, hardmine.state.Stateful); `to_config()` is the flat form a policy saves among its arguments.
    """

    registry: ClassVar[Registry] = SCHEDULES
    state_name_key = "schedule"

    def __call__(self, epoch: float) -> float:
        raise NotImplementedError

    def bounds(self) -> tuple[float, float]:
        """(lowest, highest) value over every epoch >= 0 (the infimum/supremum where it is approached, not
        reached). The default evaluates integer epochs 0 .. 10000; subclasses with a closed form override it."""
        values = [self(float(epoch)) for epoch in range(10001)]
        return min(values), max(values)

    def to_config(self) -> dict[str, Any]:
        """The schedule's arguments, with its registered name under "schedule" (`schedule_from_state` reads it)."""
        return {"schedule": self.name, **self.saved_config()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_params() == other.get_params()



class Constant(Schedule):
    """`value` at every epoch."""

    name = "constant"

    def __init__(self, value: float) -> None:
        self.value = check_number("value", value)

    def __call__(self, epoch: float) -> float:
        return self.value

    def bounds(self) -> tuple[float, float]:
        """(value, value)."""
        return self.value, self.value


class Linear(Schedule):
    """`start` until epoch `begin`, then a straight line to `end` at epoch `begin + epochs`, then `end`."""

    name = "linear"

    def __init__(self, start: float, end: float, epochs: float, begin: float = 0.0) -> None:
        self.start = check_number("start", start)
        self.end = check_number("end", end)
        self.epochs = check_number("epochs", epochs, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
        self.begin = check_number("begin", begin, 0.0, math.inf, high_inclusive=False)

    def _fraction(self, epoch: float) -> float:
        return min(1.0, max(0.0, (epoch - self.begin) / self.epochs))

    def __call__(self, epoch: float) -> float:
        return self.start + (self.end - self.start) * self._fraction(epoch)

    def bounds(self) -> tuple[float, float]:
        """(min, max) of start and end: the value moves monotonically between them."""
        return min(self.start, self.end), max(self.start, self.end)


class Cosine(Linear):
    """Like Linear, along half a cosine: flat at both ends, steepest in the middle."""

    name = "cosine"

    def __call__(self, epoch: float) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * self._fraction(epoch)))


class Step(Schedule):
    """`start`, multiplied by `factor` every `every` epochs (floor), clipped to [low, high]."""

    name = "step"

    def __init__(self, start: float, factor: float, every: float = 1.0, low: float = -math.inf,
                 high: float = math.inf) -> None:
        self.start = check_number("start", start)
        self.factor = check_number("factor", factor)
        self.every = check_number("every", every, 0.0, math.inf, low_inclusive=False, high_inclusive=False)
        self.low = float(low)
        self.high = float(high)
        if not self.low <= self.high:
            raise ValueError(f"low must be <= high, got low={low}, high={high}")

    def __call__(self, epoch: float) -> float:
        power = math.floor(epoch / self.every)
        try:
            value = self.start * self.factor ** power
        except OverflowError:  # |factor| > 1 after many epochs: the value has grown past float's range
            value = math.copysign(math.inf, self.start * (self.factor if power % 2 else 1.0))
        return min(self.high, max(self.low, value))

    def bounds(self) -> tuple[float, float]:
        """start * factor^k over k >= 0, clipped to [low, high]: it tends to 0 when |factor| < 1 and grows
        without bound (to +-inf, then the clip) when |factor| > 1; a negative factor alternates signs."""
        start, factor = self.start, self.factor
        if start == 0 or factor == 1:
            lo = hi = start
        elif factor == 0:
            lo, hi = min(start, 0.0), max(start, 0.0)
        elif abs(factor) < 1:
            reach = abs(start) if factor > 0 else max(abs(start), abs(start * factor))
            lo, hi = (min(start, 0.0), max(start, 0.0)) if factor > 0 else (-reach, reach)
        elif factor > 1:
            lo, hi = (start, math.inf) if start > 0 else (-math.inf, start)
        else:  # factor <= -1
            lo, hi = (-math.inf, math.inf) if factor < -1 else (-abs(start), abs(start))
        return min(self.high, max(self.low, lo)), min(self.high, max(self.low, hi))


ScheduleLike = float | int | Schedule


def as_schedule(name: str, value: ScheduleLike, low: float = -math.inf, high: float = math.inf,
                low_inclusive: bool = True, high_inclusive: bool = True) -> Schedule:
    """A Schedule from a number (constant) or a Schedule, checked over its whole course: every value it takes at
    any epoch must lie in [low, high] (open ends when not inclusive). `name` is the parameter's, for errors."""
    if isinstance(value, dict):
        try:
            value = schedule_from_state(value)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{name}: {error} (in the schedule {value!r})") from None
    if not isinstance(value, Schedule):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number or a Schedule, got {value!r}")
        value = Constant(check_number(name, value, low, high, low_inclusive, high_inclusive))
    lowest, highest = value.bounds()
    for end, at in (("lowest", lowest), ("highest", highest)):
        if (at == math.inf and high == math.inf and high_inclusive) or \
                (at == -math.inf and low == -math.inf and low_inclusive):
            continue  # growing without bound is allowed where the bound is an inclusive infinity
        try:
            check_number(name, at, low, high, low_inclusive, high_inclusive)
        except ValueError as error:
            if isinstance(value, Constant):
                raise
            raise ValueError(f"{error} as the {end} value of {value!r} over its epochs") from None
    return value


def schedule_from_state(state: dict[str, Any]) -> Schedule:
    """Rebuild a Schedule from its `to_config()` or its `state_dict()`."""
    params = dict(state)
    cls = SCHEDULES.lookup(params.pop("schedule", None))
    if set(params) == {"config", "state_version"} and isinstance(params["config"], dict):  # a state_dict()
        schedule = cls(**params["config"])
        schedule.load_state_dict(state)
        return schedule
    return cls(**params)
