"""What compare sets for each strategy's runs: the peak learning rate, chosen on validation from a small grid,
and the annealing horizon of a policy that has one.

Tuning (on by default): every strategy, uniform included, runs its first seed at each factor of the grid times the
given learning rate; the factor whose run ends with the best validation metric (mean over its last epoch) is
chosen, ties going to the given rate (factor 1, else the factor nearest to it). When the best factor lies at an
edge of the factors tried, the grid is extended one step beyond that edge (the step being the ratio of the two
outermost factors on that side), up to `extend` extra factors, as a practitioner widens a grid whose best value
is its first or last. The other seeds run at the chosen rate and the first seed's run at that rate is reused. The
runs at the other rates are the tuning runs: their
compute is reported apart (`tuning_compute`), never in compute to target. A run that diverged or collapsed
scores lowest.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from hardmine.experiments.spec import Part, StrategySpec

DEFAULT_GRID = (0.5, 1.0, 2.0)
DEFAULT_EXTEND = 2


def check_lr_grid(values: Sequence[float], option: str = "--lr-grid") -> tuple[float, ...]:
    """The grid as a tuple of floats; ValueError naming `option` and the value when it is empty, holds a value
    that is not a finite number > 0, or holds a value twice."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{option} must be a non-empty list of learning-rate factors, got {values!r}")
    grid = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{option} values must be finite numbers > 0 (factors of the given lr), got {value!r}")
        grid.append(float(value))
    if len(set(grid)) != len(grid):
        raise ValueError(f"{option} holds a value twice: {values!r}")
    return tuple(grid)


def parse_lr_grid(text: str) -> tuple[float, ...]:
    """'0.5,1,2' -> (0.5, 1.0, 2.0); ValueError naming --lr-grid and the text otherwise."""
    try:
        values = [float(item) for item in text.split(",")]
    except ValueError:
        raise ValueError(f"--lr-grid must be comma-separated numbers (factors of --lr), got {text!r}") from None
    return check_lr_grid(values)


@dataclass(frozen=True)
class Tuning:
    """The learning-rate grid, as factors of the given rate; `enabled` False runs every seed at factor 1; `extend`:
    how many factors at most are tried beyond the grid's edges when the best one lies at an edge."""

    grid: tuple[float, ...] = DEFAULT_GRID
    enabled: bool = True
    extend: int = DEFAULT_EXTEND

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", check_lr_grid(self.grid, "lr_grid"))
        if isinstance(self.extend, bool) or not isinstance(self.extend, int) or not 0 <= self.extend <= 8:
            raise ValueError(f"lr_extend must be an integer in [0, 8], got {self.extend!r}")

    def beyond(self, tried: Sequence[float], chosen: float) -> float | None:
        """The next factor to try when `chosen`, the best of the `tried` factors, lies at an edge of them: one step
        past that edge; None when it lies inside, fewer than two factors were tried, or `extend` factors beyond
        the grid were tried already."""
        ordered = sorted(tried)
        if not self.enabled or len(ordered) < 2 or len(ordered) - len(self.grid) >= self.extend:
            return None
        if chosen == ordered[-1]:
            return ordered[-1] * ordered[-1] / ordered[-2]
        if chosen == ordered[0]:
            return ordered[0] * ordered[0] / ordered[1]
        return None

    def factors(self) -> tuple[float, ...]:
        """The factors the first seed runs at (only 1.0 without tuning)."""
        return self.grid if self.enabled else (1.0,)


def choose_factor(scores: dict[float, float]) -> float:
    """The factor with the highest score (a nan score is lowest); ties go to 1.0, else to the factor nearest to 1
    (in log scale), then the smaller."""
    def key(factor: float) -> tuple[float, float, float]:
        score = scores[factor]
        return (-score if math.isfinite(score) else math.inf, abs(math.log(factor)), factor)

    return min(scores, key=key)


def lr_label(label: str, lr: float) -> str:
    """The run store's label of a strategy's run at peak learning rate `lr`."""
    return f"{label}@lr={lr:.6g}"


def with_horizon(spec: StrategySpec, epochs: int) -> StrategySpec:
    """`spec` with `epochs=epochs` added to its strategy's parameters when the strategy's constructor takes an
    `epochs` (an annealing horizon, as prune_easy's) and the spec does not set it; else `spec` itself."""
    from hardmine.inbatch.losses import LOSSES
    from hardmine.sampling.policies import POLICIES

    name = spec.strategy.name
    cls = POLICIES.get(name) or LOSSES.get(name)
    if cls is None or "epochs" in spec.strategy.params:
        return spec
    if "epochs" not in inspect.signature(cls.__init__).parameters:
        return spec
    return StrategySpec(Part(name, {**spec.strategy.params, "epochs": epochs}), spec.guards)
