"""The policy interface: how the score memory becomes the next batches, and their importance weights.

Three kinds, one base class each, and a fourth built on BatchPolicy; each kind supplies the epoch plan that draws
its batches (`epoch_plan`, hardmine.sampling.plans), so the sampler never asks what kind a policy is:
- `PriorityPolicy`: batches are drawn with replacement from a sum tree of per-sample priorities, with a uniform
  fraction `mix`, and importance weights from the draw probabilities. The one hook to write is
  `priority(difficulty) -> priorities`.
- `SubsetPolicy`: each epoch is a shuffled pass over a subset of the data chosen at the epoch's start, each sample
  with a weight (`epoch_subset`): shuffling, pruning, curricula, self-paced learning.
- `BatchPolicy`: shuffled passes over all the data; the loop's losses decide which samples of each batch are
  back-propagated (`select`): selective backprop.
- `CandidatePolicy` (candidates.py, a BatchPolicy): each step a uniformly drawn candidate batch of
  `candidates x B`; the loop's no-grad losses of it decide the B back-propagated (`score`): online batch
  selection, RHO-LOSS.

Contract, relied on by HardExampleSampler for exact resumption: everything a policy derives from the whole
memory is computed at the epoch's start (`prepare`, O(N), once an epoch) and held in `state_dict()`; per step, a
priority policy re-prioritises only the B samples just scored, a pure function of their difficulty and that state.

Guards (hardmine.sampling.guards) act through hooks that receive arrays; each kind declares in `calls` the hooks
it calls, and a guard implementing none of them is refused.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from hardmine._checks import check_choice, check_int, check_values
from hardmine.registry import Registered, Registry
from hardmine.sampling.guards.base import Guard
from hardmine.sampling.memory import Column, ScoreMemory
from hardmine.sampling.plans import EpochPlan, PriorityDraws, ShuffledPass, SubsetPass
from hardmine.sampling.schedules import Schedule, ScheduleLike, as_schedule
from hardmine.state import Field, Float, Int, Stateful

_STATISTICS = ("score", "ema")
_FLOAT32_MAX = float(np.finfo(np.float32).max)

POLICIES = Registry("policy")
"""Every policy class with a `name`, registered by subclassing: `POLICIES["importance"]`."""


class Policy(Registered, Stateful):
    """What every policy shares: the difficulty it reads, warm-up, guards, schedules and state.

    warmup: epochs of plain shuffling before the policy starts ("applying hard mining too early" is a pitfall);
        scores are still recorded during them.
    guards: Guard objects (hardmine.sampling.guards) that protect against label noise, class imbalance, lost
        coverage and unstable weights.
    statistic: the memory statistic read as difficulty: "score" (the latest) or "ema".
    stale_after: steps; a sample not scored for longer counts as never seen (it gets the largest difficulty, so
        it is drawn and re-scored soon): "failing to refresh mined samples" is a pitfall. Judged at epoch starts.
    Scheduled parameters (a number or a hardmine.sampling.schedules.Schedule) are evaluated at each epoch's start.

    Subclass PriorityPolicy, SubsetPolicy or BatchPolicy, set `name` to register, store each constructor
    argument as the attribute of its name (the saved configuration is derived from the signature, see
    hardmine.state.Stateful) and epoch-derived values in `self._state` (numpy arrays and plain values), declared
    in `state_fields`.
    """

    registry: ClassVar[Registry] = POLICIES
    calls: ClassVar[frozenset[str]] = frozenset({"adjust_selection"})
    """The guard hooks this policy calls (see hardmine.sampling.guards.base.HOOKS); a hook not listed is never
    called. Every policy calls `adjust_selection` (`selection`, the sampler's per-batch selection for an in-batch
    loss); `hardmine.testing.check_guard` checks the list against the hooks a run calls."""
    columns: ClassVar[tuple[Column, ...]] = ()
    """Memory columns this policy reads beyond the built-in ones; the sampler declares them on its memory."""
    state_version: ClassVar[int] = 1
    state_fields: ClassVar[dict[str, Field]] = {"unseen_score": Float(), "epoch": Int(-1), "fresh_since": Int()}
    """The schema of what this class adds to `self._state` (subclasses declare only their own entries; "N" is
    the data set's size); `load_state_dict` checks the union over the class hierarchy before assigning."""
    state_name_key = "name"
    state_in = "_state"
    state_key = "state"
    state_children = {"guards": "guards"}
    config_exclude = ("guards",)  # each guard saves its own configuration

    promises: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Class flags that vouch for what some methods compute (flag -> those methods): a subclass (or a mixin) that
    overrides one of them without declaring the flag again gets the flag False, so the sampler's shortcuts
    that rely on it are not taken on methods the flag was not declared for."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for flag, methods in cls.promises.items():
            declared = next(klass for klass in cls.__mro__ if flag in vars(klass))
            if declared is not cls and any(getattr(cls, m) is not getattr(declared, m) for m in methods):
                setattr(cls, flag, False)

    def __init__(self, *, warmup: int = 0, guards: Sequence[Guard] = (), statistic: str = "score",
                 stale_after: int | None = None) -> None:
        self.warmup = check_int("warmup", warmup, minimum=0)
        if isinstance(guards, Guard):
            guards = (guards,)  # one guard given as itself
        try:
            listed = tuple(guards) if not isinstance(guards, (str, bytes, dict)) else None
        except TypeError:
            listed = None
        if listed is None:
            raise TypeError(f"guards must be a list of Guard objects (or one Guard), got {guards!r} of type "
                            f"{type(guards).__name__}")
        guards = listed
        for guard in guards:
            if not isinstance(guard, Guard):
                raise TypeError(f"guards must hold Guard objects, got {type(guard).__name__}")
            if not self.affected_by(guard):
                raise ValueError(f"{guard.name} has no effect on the {self.name!r} policy: the guard implements "
                                 f"{sorted(guard.hooks())}, the policy calls {sorted(self.calls)}")
        self.guards = guards
        self.statistic = check_choice("statistic", statistic, _STATISTICS)
        self.stale_after = None if stale_after is None else check_int("stale_after", stale_after)
        self._state: dict[str, Any] = {"unseen_score": 1.0, "epoch": -1, "fresh_since": -1}
        self._bounds: dict[str, tuple[float, float]] = {}  # scheduled parameter -> (lowest, highest) value
        self._pinned: dict[str, float] = {}  # scheduled values fixed while check_scores tries their extremes

    default_chunk: ClassVar[int] = 64
    """The sampler's default `chunk` (batches drawn at once): a shuffled pass, batch or candidate selection draws
    nothing from the memory within an epoch, so a large chunk changes no batch and costs less per step."""

    def epoch_plan(self, epoch: int) -> type[EpochPlan]:
        """The plan that draws `epoch`'s batches (hardmine.sampling.plans): a shuffled pass over all the data,
        unless a kind draws otherwise outside its warm-up."""
        return ShuffledPass

    def selects(self, epoch: int) -> bool:
        """Whether `update` decides the weights of each batch of `epoch` from its losses (`guarded_select`)."""
        return False

    @property
    def valid_selection(self) -> bool:
        """Whether the weights `update` decides (a batch policy's `guarded_select`) are finite and non-negative
        by construction, so that `hm.reduce` does not check them; no policy but a batch policy selects."""
        return False

    @property
    def caps_weights(self) -> bool:
        """Whether `cap` may change weights (a guard, or an overridden `cap`); without, a draw skips it."""
        return bool(self.guards) or type(self).cap is not Policy.cap

    def guards_implement(self, *hooks: str) -> bool:
        """Whether one of this policy's guards implements one of `hooks` (then a shortcut that assumes the hook
        does nothing is not taken)."""
        return any(guard.hooks().intersection(hooks) for guard in self.guards)

    @classmethod
    def affected_by(cls, guard: Guard | type[Guard]) -> bool:
        """Whether `guard` (an object or a class) implements a hook this policy calls; if not, it is refused."""
        return bool(guard.hooks() & cls.calls)

    def _schedule(self, name: str, value: ScheduleLike, low: float = -math.inf, high: float = math.inf,
                  low_inclusive: bool = True, high_inclusive: bool = True) -> Schedule:
        """Store a scheduled constructor argument, checked to stay in [low, high] at every epoch (open ends when
        not inclusive); its value at the current epoch is `self.value(name)`."""
        schedule = as_schedule(name, value, low, high, low_inclusive, high_inclusive)
        setattr(self, name, schedule)
        self._bounds[name] = schedule.bounds()
        return schedule

    def value(self, name: str) -> float:
        """The value of scheduled parameter `name` at the epoch last started (epoch 0 before any)."""
        if name in self._pinned:
            return self._pinned[name]
        return getattr(self, name)(max(self._state["epoch"], 0))

    def check_scores(self, name: str, indices: np.ndarray, values: np.ndarray, memory: ScoreMemory) -> None:
        """Hook run before an update writes anything: raise ValueError, naming `name`, when `values` [B] (the
        finite scores of samples `indices` [B]) would derive state the policy cannot hold. The base checks
        nothing."""

    def check_batch_scores(self, name: str, indices: np.ndarray, values: np.ndarray, memory: ScoreMemory,
                           extremes: tuple[float, float]) -> None:
        """`check_scores` as the sampler calls it, with the smallest and largest of `values` it already has
        (a priority policy may need no more)."""
        self.check_scores(name, indices, values, memory)

    def in_warmup(self, epoch: int) -> bool:
        """True while `epoch` is one of the warm-up epochs, drawn by plain shuffling."""
        return epoch < self.warmup

    def statistics_read(self) -> frozenset[str]:
        """The `update()` statistics (sources such as "true_prob", "margin") this policy and its guards read."""
        own = frozenset(c.source for c in self.columns if c.source not in ("scores", None))
        return own.union(*(guard.sources() for guard in self.guards))

    def required_columns(self) -> tuple[Column, ...]:
        """The memory columns this policy and its guards need."""
        return tuple(self.columns) + tuple(c for guard in self.guards for c in guard.columns)

    def attach(self, memory: ScoreMemory) -> None:
        """Called once by the sampler that takes this policy: declare the memory columns the policy and its guards
        need. A policy with a fixed column (a reference model's per-sample loss) checks and writes it here."""
        for column in self.required_columns():
            memory.declare(column)

    def start_epoch(self, epoch: int, memory: ScoreMemory) -> None:
        """Recompute what the policy and its guards derive from the whole memory (O(N), once an epoch)."""
        self._state["epoch"] = epoch
        if self.stale_after is not None:
            self._state["fresh_since"] = memory.updates - self.stale_after
        raw = memory.get(self.statistic).astype(np.float64)
        seen = self._fresh(memory, None)
        self._state["unseen_score"] = float(raw[seen].max()) if seen.any() else 1.0
        if self.guards:
            unguarded = self.raw_difficulty(memory)
            for guard in self.guards:
                guard.start_epoch(epoch, memory, unguarded)
        self.prepare(epoch, memory)

    def prepare(self, epoch: int, memory: ScoreMemory) -> None:
        """Hook: the policy's own epoch-start work (O(N)); `difficulty` is final (guards applied) when it runs."""

    def _fresh(self, memory: ScoreMemory, indices: np.ndarray | None) -> np.ndarray:
        """True [B] or [N] where a sample has a score that is not stale."""
        return (memory.get("seen", indices) > 0) & (memory.get("last_step", indices) >= self._state["fresh_since"])

    def raw_difficulty(self, memory: ScoreMemory, indices: np.ndarray | None = None) -> np.ndarray:
        """Difficulty [B] or [N] (float64, higher = harder) before the guards: the memory's statistic, never-seen
        and stale samples at the largest value seen when the epoch started."""
        values = memory.get(self.statistic, indices).astype(np.float64)
        return np.where(self._fresh(memory, indices), values, self._state["unseen_score"])

    def difficulty(self, memory: ScoreMemory, indices: np.ndarray | None = None) -> np.ndarray:
        """Difficulty [B] or [N] (float64) after each guard's `adjust_difficulty` (e.g. noise suspects)."""
        return self.guarded_difficulty(self.raw_difficulty(memory, indices), indices)

    def guarded_difficulty(self, values: np.ndarray, indices: np.ndarray | None) -> np.ndarray:
        """`values` [B] or [N] of samples `indices` (None: all) through each guard's `adjust_difficulty`."""
        for guard in self.guards:
            values = guard.adjust_difficulty(values, indices)
        return values

    def weights(self, probabilities: np.ndarray, num_samples: int) -> np.ndarray:
        """Importance weights [B] of samples drawn with `probabilities` [B]; ones (through the
        guards' caps) unless a priority policy corrects."""
        return self.cap(np.ones_like(probabilities, dtype=np.float64))

    def cap(self, weights: np.ndarray) -> np.ndarray:
        """Weights [B] through each guard's `adjust_weights` (e.g. a cap)."""
        for guard in self.guards:
            weights = guard.adjust_weights(weights)
        return weights

    def selection(self, keep: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Boolean [B]: which samples `indices` of a batch an in-batch loss may use, after each guard's
        `adjust_selection` (a noise guard leaves out its suspects), when this policy lists it in `calls`."""
        if "adjust_selection" not in self.calls:
            return keep
        for guard in self.guards:
            keep = guard.adjust_selection(keep, indices)
        return keep

    def stats(self) -> dict[str, float]:
        """Hook: numbers about the current epoch for logging (e.g. a realised keep ratio)."""
        return {}

    def guard_stats(self) -> dict[str, float]:
        """The guards' numbers for logging (e.g. noise_suspects)."""
        out: dict[str, float] = {}
        for guard in self.guards:
            out.update(guard.stats())
        return out

    def suspects(self) -> np.ndarray | None:
        """Sorted int64 indices the guards suspect of wrong labels, or None when no guard looks for them."""
        found = [s for s in (guard.suspects() for guard in self.guards) if s is not None]
        if not found:
            return None
        return np.unique(np.concatenate(found)).astype(np.int64)

    def _state_owner(self) -> str:
        return f"policy {self.name!r}"

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        guards = f", guards={list(self.guards)!r}" if self.guards else ""
        return f"{type(self).__name__}({params}{guards})"


class PriorityPolicy(Policy):
    """Draws each batch from a sum tree of priorities; write `priority(difficulty)`.

    The sampler draws a `floor` fraction of each batch uniformly (the policy's `mix`, raised by guards),
    the rest in proportion to `priorities`, and puts the guards' `forced` samples first in the epoch.
    Override `weights` for importance correction (the default is ones, through the guards' caps).
    """

    calls = Policy.calls | {"adjust_difficulty", "adjust_priorities", "adjust_mix", "forced", "adjust_weights",
                            "start_priorities", "adjust_probabilities"}
    mix: float = 0.0
    weights_rows: ClassVar[bool] = False
    """Whether `weights` also takes probabilities [K, B] (K batches of B drawn together, each row normalised on
    its own), so that a chunk's weights are one call. A subclass that overrides `weights` or `cap` without
    declaring this again is called batch by batch."""
    promises = {"monotone": ("priority", "priorities", "difficulty", "raw_difficulty", "guarded_difficulty"),
                "weights_rows": ("weights", "cap")}
    default_chunk = 16  # priorities at most this many batches stale

    def epoch_plan(self, epoch: int) -> type[EpochPlan]:
        """Draws by priority (`PriorityDraws`) after the warm-up."""
        return ShuffledPass if self.in_warmup(epoch) else PriorityDraws

    def priority(self, difficulty: np.ndarray) -> np.ndarray:
        """Hook: guarded difficulties [B] or [N] (float64) -> non-negative priorities of the same shape."""
        raise NotImplementedError(f"{type(self).__name__} must implement priority(difficulty)")

    _checked_range: tuple[float, float] | None = None  # difficulties whose priorities check_scores found fit

    def start_epoch(self, epoch: int, memory: ScoreMemory) -> None:
        """The base epoch start, then the guards that rescale priorities see the policy's own, [N]."""
        self._checked_range = None  # the epoch's state (a rank snapshot) may change what priorities are
        super().start_epoch(epoch, memory)
        preparing = [guard for guard in self.guards if "start_priorities" in guard.hooks()]
        if preparing:
            own = self.priority(self.difficulty(memory))
            for guard in preparing:
                guard.start_priorities(own, memory.labels)

    def priorities(self, memory: ScoreMemory, indices: np.ndarray | None = None) -> np.ndarray:
        """Non-negative sampling priorities [B] or [N] (float64), after the guards' `adjust_priorities`."""
        p = self.priority(self.difficulty(memory, indices))
        if self.guards:
            labels = memory.labels
            if labels is not None and indices is not None:
                labels = labels[indices]
            for guard in self.guards:
                p = guard.adjust_priorities(p, indices, labels)
        return p

    def check_batch_scores(self, name: str, indices: np.ndarray, values: np.ndarray, memory: ScoreMemory,
                           extremes: tuple[float, float]) -> None:
        """`check_scores`, decided from `extremes` (the smallest and largest of `values`) where that is exact: a
        `monotone` policy without guards that change difficulties or priorities is checked at those two scores,
        and not at all while they lie in a range already checked this epoch (every priority in between lies
        between those of its ends)."""
        if type(self).check_scores is PriorityPolicy.check_scores and self.monotone and \
                not self.guards_implement("adjust_difficulty", "adjust_priorities"):
            low, high = extremes
            checked = self._checked_range
            if checked is not None and checked[0] <= low and high <= checked[1]:
                return
            if checked is not None:
                low, high = min(low, checked[0]), max(high, checked[1])
            if self._priorities_fit(np.array([low, high]), None, None, self._schedule_ends()) is None:
                self._checked_range = (low, high)
                return
        self.check_scores(name, indices, values, memory)

    def check_scores(self, name: str, indices: np.ndarray, values: np.ndarray, memory: ScoreMemory) -> None:
        """Refuse scores whose priorities overflow float32 (the sum tree's leaves) or are not finite and
        non-negative, at any value the scheduled parameters take over their whole schedule; nothing changes.

        A difficulty statistic (score or moving average) never exceeds the largest score recorded, so the
        priorities of these scores bound every priority they can derive later. Checked at every score (the
        sampler's `check_batch_scores` takes a shortcut for `monotone` policies).
        """
        ends = self._schedule_ends()
        difficulty = self.guarded_difficulty(np.asarray(values, dtype=np.float64), indices)
        labels = None if memory.labels is None else memory.labels[indices]
        found = self._priorities_fit(difficulty, indices, labels, ends)
        if found is not None:
            pos, priority, corner = found
            params = ", ".join(f"{k}={v:g}" for k, v in zip(ends, corner))
            largest = int(np.argmax(values))
            raise ValueError(
                f"{name} would give sample {int(indices[pos])} a priority of {priority:.4g}"
                f"{f' with {params}' if params else ''} (priorities must be finite, >= 0 and at most "
                f"float32's {_FLOAT32_MAX:.4g}); the largest {name} is {float(values[largest]):.4g} at index "
                f"{int(indices[largest])}: scale the scores down or lower the exponent; nothing was recorded")

    monotone: ClassVar[bool] = False
    """Whether `priority` is non-decreasing in difficulty at every value of its scheduled parameters (lets
    `check_batch_scores` look at a batch's extremes only)."""

    def _schedule_ends(self) -> dict[str, list[float]]:
        """The distinct finite ends of every scheduled parameter's range, by name."""
        return {key: sorted({v for v in bounds if math.isfinite(v)}) for key, bounds in self._bounds.items()}

    def _priorities_fit(self, difficulty: np.ndarray, indices: np.ndarray | None, labels: np.ndarray | None,
                        ends: dict[str, list[float]]) -> tuple[int, float, tuple[float, ...]] | None:
        """None when the guarded priorities of `difficulty` [B] are finite, >= 0 and fit float32 at every corner of
        the scheduled parameters' ranges; else (position, priority, corner) of the first that is not."""
        for corner in itertools.product(*ends.values()):
            self._pinned = dict(zip(ends, corner))
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    p = self.priority(difficulty)
                    for guard in self.guards:
                        p = guard.adjust_priorities(p, indices, labels)
            finally:
                self._pinned = {}
            bad = ~(np.isfinite(p) & (p >= 0) & (p <= _FLOAT32_MAX))
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                return pos, float(p[pos]), corner
        return None

    def _after_load(self) -> None:
        self._checked_range = None  # checked against the state replaced

    def relative_probabilities(self, probabilities: np.ndarray, indices: np.ndarray,
                               labels: np.ndarray | None) -> np.ndarray:
        """Draw probabilities [B] of samples `indices` [B] through each guard's `adjust_probabilities` (`labels`:
        the memory's [N], or None), as `weights` should see them: a class_balance guard makes its weights
        correct toward the class-balanced distribution instead of toward uniform."""
        own = None if labels is None else labels[indices]
        for guard in self.guards:
            probabilities = guard.adjust_probabilities(probabilities, indices, own)
        return probabilities

    @property
    def floor(self) -> float:
        """The uniform fraction of each batch: the policy's `mix` through each guard's `adjust_mix`."""
        mix = self.mix
        for guard in self.guards:
            mix = guard.adjust_mix(mix)
        return mix

    def forced(self) -> np.ndarray:
        """Indices (int64) the guards require in this epoch; the sampler draws them first, in a seeded order."""
        found = [guard.forced() for guard in self.guards]
        return np.concatenate(found).astype(np.int64) if found else np.zeros(0, dtype=np.int64)


class SubsetPolicy(Policy):
    """Each epoch a shuffled pass over a subset chosen at the epoch's start; write `epoch_subset`.

    A policy that takes a fraction of the data within groups (class balance) calls `strata` and adds
    "strata" to `calls`.
    """

    calls = Policy.calls | {"adjust_difficulty", "adjust_subset", "adjust_weights"}

    def epoch_plan(self, epoch: int) -> type[EpochPlan]:
        """A pass over the epoch's subset (`SubsetPass`) after the warm-up."""
        return ShuffledPass if self.in_warmup(epoch) else SubsetPass

    def epoch_subset(self, memory: ScoreMemory,
                     rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Hook: (indices [M] int64, weights [M] float64) of this epoch's samples, or (None, None) for all.

        Called once at the epoch's start, after `start_epoch`; `rng` is the epoch's seeded generator.
        """
        return None, None

    def guarded_subset(self, memory: ScoreMemory,
                       rng: np.random.Generator) -> tuple[np.ndarray | None, np.ndarray | None]:
        """`epoch_subset`, then each guard's `adjust_subset` (a coverage guard adds left-out samples, a class_balance
        guard resamples to its quotas), when this policy lists it in `calls`; an epoch over all the data is then
        the subset of every sample."""
        subset, weights = self.epoch_subset(memory, rng)
        if "adjust_subset" not in self.calls or not self.guards_implement("adjust_subset"):
            return subset, weights
        if subset is None:
            subset, weights = np.arange(memory.num_samples, dtype=np.int64), np.ones(memory.num_samples)
        for guard in self.guards:
            subset, weights = guard.adjust_subset(subset, weights, memory.num_samples, rng)
        return subset, weights

    def strata(self, memory: ScoreMemory) -> np.ndarray | None:
        """Group ids [N] within which to take a fraction (a class-balance guard's labels), or None."""
        for guard in self.guards:
            groups = guard.strata(memory.labels)
            if groups is not None:
                return groups
        return None


class BatchPolicy(Policy):
    """Shuffled passes over all the data; the losses of each scored batch decide its weights (`select`)."""

    calls = Policy.calls | {"adjust_difficulty", "adjust_weights"}
    valid_weights: ClassVar[bool] = False
    """Whether `select` returns finite, non-negative weights by construction: the sampler then marks them (without
    a guard that adjusts weights) so that `hm.reduce` does not check them again. A subclass that overrides
    `select`, `guarded_select` or `cap` without declaring this again gets False."""
    promises = {"valid_weights": ("select", "guarded_select", "cap")}

    def selects(self, epoch: int) -> bool:
        """After the warm-up, `update` decides each batch's weights."""
        return not self.in_warmup(epoch)

    @property
    def valid_selection(self) -> bool:
        """`valid_weights`, unless a guard adjusts the weights."""
        return self.valid_weights and not self.guards_implement("adjust_weights")

    def select(self, losses: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """Hook: weights [B] of a scored batch of samples `indices` [B] given their guarded losses [B]:
        0 for the samples not to back-propagate."""
        return np.ones_like(losses, dtype=np.float64)

    def guarded_select(self, losses: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """`select` on the losses through the guards' `adjust_difficulty` (a noise guard's suspects compete with
        the median difficulty, not their loss), then the guards' `adjust_weights`."""
        losses = self.guarded_difficulty(np.asarray(losses, dtype=np.float64), indices)
        if self.guards:  # the losses were checked finite; what the guards made of them is checked here
            check_values("the guards' difficulty of per_sample_loss", losses, losses.size, indices=indices)
        return self.cap(self.select(losses, indices))


NORMALIZE = ("max", "none")


def check_normalize(normalize: str) -> str:
    """The `normalize` argument of importance weights, checked."""
    return check_choice("normalize", normalize, NORMALIZE)


def importance_weights(probabilities: np.ndarray, num_samples: int, beta: float, normalize: str) -> np.ndarray:
    """(N * P)^-beta [B] (or [K, B], a batch a row); divided by the batch's largest when normalize is "max" (it
    only scales updates down).

    With beta = 1 and no normalisation the weighted mean loss is an unbiased estimate of the uniform mean.
    """
    w = (num_samples * probabilities) ** (-beta)
    return w / w.max(axis=-1, keepdims=True) if normalize == "max" else w


def top_samples(key: np.ndarray, fraction: float, groups: np.ndarray | None = None) -> np.ndarray:
    """Sorted int64 indices of the ceil(fraction * n) samples with the largest `key` [N] (at least one).

    With `groups` [N] (e.g. class labels), the fraction is taken within each group, so every group keeps its share.
    """
    if groups is None:
        count = max(1, math.ceil(fraction * key.size - 1e-9))  # 0.3 * 100 is 30.000000000000004
        return np.sort(np.argpartition(-key, count - 1)[:count]).astype(np.int64)
    chosen = []
    for c in np.unique(groups):
        members = np.flatnonzero(groups == c)
        chosen.append(members[top_samples(key[members], fraction)])
    return np.sort(np.concatenate(chosen)).astype(np.int64)
