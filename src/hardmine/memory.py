"""ScoreMemory: what the model found hard, as named per-sample columns, each declared once.

A `Column` says its name, dtype, initial value, which `update()` argument it records (`source`), how it updates
(`rule`), and whether it is checkpointed. The built-in statistics are declared columns (`BUILTIN_COLUMNS`); a
policy or guard that needs another one (say a fixed `irreducible_loss`, set once from an array) lists it in its
`columns`, and the sampler declares it on the memory; a user can call `memory.declare(column)` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardmine._checks import check_indices, check_int, check_number, check_values, last_occurrence, to_numpy
from hardmine.state import check_state, to_saved

Rule = Callable[["ScoreMemory", np.ndarray, np.ndarray, np.ndarray, int], None]
"""How a column updates in place: rule(memory, column [N], indices [B] (distinct), values [B] float64, step)."""


def assign(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    """The default rule: the column holds the latest value."""
    column[idx] = values


@dataclass(frozen=True)
class Column:
    """One per-sample column [N] of a ScoreMemory.

    name: how `get` and the state call it. dtype: its numpy dtype. fill: its value before any observation.
    source: the `update()` argument it records ("scores" for the score itself, or a keyword such as "true_prob");
        None for a column written only by `memory.set` (e.g. a fixed per-sample irreducible loss).
    rule: how it updates from the source's values (default: keeps the latest). Columns of one source update in
        declaration order, so a rule may read the columns declared after it before they change.
    checkpointed: whether `state_dict()` holds it (otherwise a load keeps the current values).
    A column whose source is an optional update keyword is allocated on the first update that passes it.
    """

    name: str
    dtype: Any
    fill: float = 0.0
    source: str | None = "scores"
    rule: Rule = assign
    checkpointed: bool = True

    @property
    def lazy(self) -> bool:
        """Allocated on the first update passing its source (sources other than "scores" and None)."""
        return self.source not in ("scores", None)

    def new(self, num_samples: int) -> np.ndarray:
        """A fresh column [N] at its fill value."""
        return np.full(num_samples, self.fill, dtype=np.dtype(self.dtype))


def _ema(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    first = memory._columns["seen"][idx] == 0
    values = values.astype(np.float32)
    column[idx] = np.where(first, values, memory.ema_decay * column[idx] + (1.0 - memory.ema_decay) * values)


def _count(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    column[idx] += 1


def _step(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    column[idx] = step


def _welford_terms(memory: ScoreMemory, idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(old mean, new mean) [B] of the true-class probability, float64."""
    n = memory._columns["prob_count"][idx] + 1
    old = np.nan_to_num(memory._columns["prob_mean"][idx].astype(np.float64))
    return old, old + (values - old) / n


def _prob_m2(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    old, new = _welford_terms(memory, idx, values)
    column[idx] = column[idx] + (values - old) * (values - new)


def _prob_mean(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    column[idx] = _welford_terms(memory, idx, values)[1]


def _forgetting(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    column[idx] += (memory._columns["last_correct"][idx] == 1) & (values == 0)


def _add(memory: ScoreMemory, column: np.ndarray, idx: np.ndarray, values: np.ndarray, step: int) -> None:
    column[idx] += values


BUILTIN_COLUMNS: tuple[Column, ...] = (
    Column("score", np.float32, np.nan),                       # latest difficulty score (NaN before the first visit)
    Column("ema", np.float32, np.nan, rule=_ema),              # exponential moving average of the score
    Column("seen", np.int32, 0, rule=_count),                  # times the sample was scored
    Column("last_step", np.int64, -1, rule=_step),             # step of the latest visit (-1 before the first)
    Column("prob_m2", np.float32, 0.0, "true_prob", _prob_m2),      # running sum of squared deviations (Welford)
    Column("prob_mean", np.float32, np.nan, "true_prob", _prob_mean),  # running mean (cartography's confidence)
    Column("prob_count", np.int32, 0, "true_prob", _count),         # observations of true_prob
    Column("forgetting", np.int32, 0, "correct", _forgetting),      # correct -> incorrect flips (Toneva et al.)
    Column("last_correct", np.int8, -1, "correct"),                 # the latest `correct` (-1 before the first)
    Column("margin_count", np.int32, 0, "margin", _count),          # observations of margin
    Column("margin_sum", np.float32, 0.0, "margin", _add),          # running sum (area under the margin)
)


def _confidence(memory: ScoreMemory, indices: Any) -> np.ndarray:
    return memory.get("prob_mean", indices)


def _variability(memory: ScoreMemory, indices: Any) -> np.ndarray:
    count = memory.get("prob_count", indices)
    return np.where(count > 0, np.sqrt(memory.get("prob_m2", indices) / count), np.nan).astype(np.float32)


def _aum(memory: ScoreMemory, indices: Any) -> np.ndarray:
    count = memory.get("margin_count", indices)
    return np.where(count > 0, memory.get("margin_sum", indices) / count, np.nan).astype(np.float32)


# Statistics computed from columns: name -> (the column whose presence means it is tracked, function).
_DERIVED: dict[str, tuple[str, Callable[[ScoreMemory, Any], np.ndarray]]] = {
    "confidence": ("prob_mean", _confidence), "variability": ("prob_m2", _variability), "aum": ("margin_sum", _aum)}
_STATE_VERSION = 1
_META = ("labels", "updates", "num_samples", "ema_decay", "state_version")


class ScoreMemory:
    """Per-sample difficulty memory for a data set of `num_samples` examples.

    num_samples: N, the data set's length.
    labels: optional int array [N] of class labels, kept so that guards can balance classes.
    ema_decay: weight of the old value in the moving average: ema <- decay * ema + (1 - decay) * score.

    Statistics (each an array [N]): "score" (float32, latest), "ema" (float32), "seen" (int32 count) and
    "last_step" (int64, -1 when never seen); "label" (int64) when labels were given. Memory: 20 bytes per sample,
    28 with labels. Updates that pass `true_prob`, `correct` or `margin` (see `hardmine.scores.statistics`) also
    keep, from then on: "confidence" and "variability" (running mean and standard deviation of the true-class
    probability: Dataset Cartography, Swayamdipta et al. 2020; 12 bytes per sample), "forgetting" (correct ->
    incorrect flips, Toneva et al. 2019; 5 bytes) and "aum" (mean margin, Pleiss et al. 2020; 8 bytes).
    Further columns are added with `declare`.
    """

    def __init__(self, num_samples: int, labels: Any = None, ema_decay: float = 0.9) -> None:
        self.num_samples = check_int("num_samples", num_samples)
        self.ema_decay = check_number("ema_decay", ema_decay, 0.0, 1.0, high_inclusive=False)
        self._labels = None if labels is None else self._check_labels(labels)
        self._declared: dict[str, Column] = {}
        self._columns: dict[str, np.ndarray] = {}
        for column in BUILTIN_COLUMNS:
            self.declare(column)
        self._updates = 0

    def declare(self, column: Column) -> None:
        """Add `column` (allocated now unless it is lazy); declaring the same column again does nothing."""
        if not isinstance(column, Column):
            raise TypeError(f"column must be a hardmine.memory.Column, got {type(column).__name__}")
        known = self._declared.get(column.name)
        if known is not None:
            if known != column:
                raise ValueError(f"column {column.name!r} is already declared differently: {known}")
            return
        if column.name in _DERIVED or column.name in ("label", *_META):
            raise ValueError(f"column name {column.name!r} is reserved")
        self._declared[column.name] = column
        if not column.lazy:
            self._columns[column.name] = column.new(self.num_samples)

    def _check_labels(self, labels: Any) -> np.ndarray:
        arr = to_numpy(labels)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"labels must hold integers, got dtype {arr.dtype}")
        if arr.shape != (self.num_samples,):
            raise ValueError(f"labels must have shape ({self.num_samples},), got {tuple(arr.shape)}")
        if arr.size and arr.min() < 0:
            raise ValueError(f"labels must be non-negative class ids, got {arr.min()}")
        return arr.astype(np.int64)

    def __len__(self) -> int:
        """N, the number of samples."""
        return self.num_samples

    @property
    def labels(self) -> np.ndarray | None:
        """The int64 labels [N], or None when none were given."""
        return self._labels

    @property
    def num_classes(self) -> int:
        """1 + the largest label (0 when there are no labels)."""
        return 0 if self._labels is None else int(self._labels.max()) + 1

    @property
    def updates(self) -> int:
        """Number of `update` calls so far: the default step of the next update."""
        return self._updates

    @property
    def columns(self) -> tuple[Column, ...]:
        """The declared columns, in declaration order."""
        return tuple(self._declared.values())

    @property
    def statistics(self) -> tuple[str, ...]:
        """Names accepted by `get`."""
        return tuple(self._declared) + tuple(_DERIVED) + (("label",) if self._labels is not None else ())

    def tracks(self, name: str) -> bool:
        """Whether statistic `name` is being recorded: always for the eager columns, once passed for lazy ones."""
        source = _DERIVED[name][0] if name in _DERIVED else name
        return source in self._columns or (name == "label" and self._labels is not None)

    def get(self, name: str, indices: Any = None) -> np.ndarray:
        """A copy of statistic `name` for `indices` [B] (int64), or for all N samples when indices is None.

        "confidence", "variability" and "aum" are NaN, "forgetting" 0, where nothing was observed.
        """
        if name in _DERIVED:
            with np.errstate(invalid="ignore", divide="ignore"):
                return _DERIVED[name][1](self, indices)
        if name in self._declared and name not in self._columns:
            n = self.num_samples if indices is None else check_indices("indices", indices, self.num_samples).size
            return self._declared[name].new(n)
        if name == "label":
            if self._labels is None:
                raise ValueError("name 'label' is not available: this ScoreMemory was built without labels")
            source = self._labels
        elif name in self._columns:
            source = self._columns[name]
        else:
            raise ValueError(f"name must be one of {self.statistics}, got {name!r}")
        if indices is None:
            return source.copy()
        return source[check_indices("indices", indices, self.num_samples)]

    def set(self, name: str, values: Any, indices: Any = None) -> None:
        """Write `values` [B] (or [N] when indices is None) into column `name`, one without a source."""
        column = self._declared.get(name)
        if column is None or column.source is not None:
            writable = [c.name for c in self._declared.values() if c.source is None]
            raise ValueError(f"name must be a declared column without a source, one of {writable}, got {name!r}")
        idx = np.arange(self.num_samples) if indices is None else check_indices("indices", indices, self.num_samples)
        arr = check_values(name, values, idx.size, indices=None if indices is None else idx)
        keep = last_occurrence(idx)
        self._columns[name][idx[keep]] = arr[keep]

    def update(self, indices: Any, scores: Any, step: int | None = None, **stats: Any) -> None:
        """Record the difficulty `scores` [B] (higher = harder) of the samples `indices` [B] (int64).

        step: the training step of this observation; defaults to the number of updates so far.
        stats: optional [B] statistics of the same samples, by source name: `true_prob`, `correct`, `margin`
        (`hardmine.scores.statistics`) and the sources of declared columns. A duplicated index takes its last
        values. Raises ValueError, naming how many and which indices, when a score or statistic is NaN or inf;
        nothing is changed then.
        """
        idx = check_indices("indices", indices, self.num_samples)
        sources = {"scores": check_values("scores", scores, idx.size, indices=idx)}
        known = {c.source for c in self._declared.values()} - {"scores", None}
        for name, value in stats.items():
            if name not in known:
                raise TypeError(f"update() got statistic {name!r}; this memory records {sorted(known)}")
            if value is None:
                continue
            arr = to_numpy(value)
            sources[name] = check_values(name, arr.astype(np.int8) if arr.dtype == np.bool_ else arr, idx.size,
                                         indices=idx)
        step = check_int("step", self._updates if step is None else step, minimum=0)
        keep = last_occurrence(idx)
        idx = idx[keep]
        values = {name: arr[keep] for name, arr in sources.items()}
        updated = [c for c in self._declared.values() if c.source in values]
        for column in updated:
            if column.name not in self._columns:
                self._columns[column.name] = column.new(self.num_samples)
        for column in updated:
            column.rule(self, self._columns[column.name], idx, values[column.source], step)
        self._updates += 1

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of every checkpointed column as a CPU tensor, plus counters: loadable with
        torch.load(weights_only=True)."""
        state: dict[str, Any] = {name: to_saved(arr) for name, arr in self._columns.items()
                                 if self._declared[name].checkpointed}
        state.update(labels=to_saved(self._labels), updates=self._updates, num_samples=self.num_samples,
                     ema_decay=self.ema_decay, state_version=_STATE_VERSION)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; everything is checked before anything is changed."""
        required = [c.name for c in self._declared.values() if c.checkpointed and not c.lazy]
        check_state(state, "ScoreMemory", _STATE_VERSION, [*required, *_META])
        if state["num_samples"] != self.num_samples:
            raise ValueError(f"state holds num_samples={state['num_samples']}, this memory has {self.num_samples}")
        unknown = [k for k in state if k not in _META and k not in self._declared]
        if unknown:
            raise ValueError(f"state holds columns {unknown} this memory does not declare (see ScoreMemory.declare)")
        columns = {name: arr for name, arr in self._columns.items() if not self._declared[name].checkpointed}
        for column in self._declared.values():
            if not column.checkpointed or state.get(column.name) is None:
                continue
            arr = np.array(to_numpy(state[column.name]))
            dtype = np.dtype(column.dtype)
            if arr.shape != (self.num_samples,) or arr.dtype != dtype:
                raise ValueError(f"state[{column.name!r}] must be {dtype} of shape ({self.num_samples},), "
                                 f"got {arr.dtype} of shape {tuple(arr.shape)}")
            columns[column.name] = arr
        labels = None if state["labels"] is None else self._check_labels(state["labels"])
        updates = check_int("state['updates']", state["updates"], minimum=0)
        ema_decay = check_number("state['ema_decay']", state["ema_decay"], 0.0, 1.0, high_inclusive=False)
        order = [name for name in self._declared if name in columns]
        self._columns = {name: columns[name] for name in order}
        self._labels, self._updates, self.ema_decay = labels, updates, ema_decay
