"""ScoreMemory: what the model found hard, as named per-sample columns, each declared once.

A `Column` says its name, dtype, initial value, which `update()` argument it records (`source`), how it updates
(`rule`), and whether it is checkpointed. The built-in statistics are declared columns (`BUILTIN_COLUMNS`); a
policy or guard that needs another one (say a fixed `irreducible_loss`, set once from an array) lists it in its
`columns`, and the sampler declares it on the memory; a user can call `memory.declare(column)` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hardmine._checks import (
    check_choice,
    check_fits_in_memory,
    check_indices,
    check_int,
    check_number,
    check_values,
    last_occurrence,
    to_numpy,
)
from hardmine.sampling.write_queue import QueuedWrite, Validate, WriteQueue
from hardmine.state import Parsed, Stateful, check_state, compare_config

Rule = Callable[["ScoreMemory", np.ndarray, np.ndarray, np.ndarray, "int | np.ndarray"], None]
"""How a column updates in place: rule(memory, column [N], indices [B] (distinct), values [B] float64, step).

step is an int, or an int64 array [B] (each sample's own step) when several buffered batches are written at once."""


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
    domain: (low, high), the closed range the source's values must lie in (None: any finite value the dtype
        holds); an integer column that keeps the latest value also needs whole numbers.
    A column whose source is an optional update keyword is allocated on the first update that passes it.
    """

    name: str
    dtype: Any
    fill: float = 0.0
    source: str | None = "scores"
    rule: Rule = assign
    checkpointed: bool = True
    domain: tuple[float, float] | None = None

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


_IGNORES_VALUES = (_count, _step)  # rules that record that a value came, not the value


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
    Column("prob_m2", np.float32, 0.0, "true_prob", _prob_m2, domain=(0.0, 1.0)),  # sum of squared deviations
    Column("prob_mean", np.float32, np.nan, "true_prob", _prob_mean),  # running mean (cartography's confidence)
    Column("prob_count", np.int32, 0, "true_prob", _count),         # observations of true_prob
    Column("forgetting", np.int32, 0, "correct", _forgetting),      # correct -> incorrect flips (Toneva et al.)
    Column("last_correct", np.int8, -1, "correct", domain=(0.0, 1.0)),  # the latest `correct` (-1 before any)
    Column("margin_count", np.int32, 0, "margin", _count),          # observations of margin
    Column("margin_sum", np.float32, 0.0, "margin", _add),          # running sum (area under the margin)
)


def _sequential_rounds(indices: np.ndarray, batch: np.ndarray) -> list[np.ndarray]:
    """Positions [M_r] for each round r: round r holds each sample's (r+1)-th batch, its last value in that batch.

    Writing the rounds in order, each with distinct indices, is writing the batches one after the other. Round 0
    holds every distinct index once, in increasing order. One sort of (index, position) keys.
    """
    size = indices.size
    if int(indices.max()) < (2**62) // size:
        ordered, order = np.divmod(np.sort(indices * size + np.arange(size)), size)
    else:
        order = np.argsort(indices, kind="stable")
        ordered = indices[order]
    where = batch[order]
    last = np.ones(size, dtype=bool)
    last[:-1] = (ordered[1:] != ordered[:-1]) | (where[1:] != where[:-1])  # the last value of a batch
    ordered, order = ordered[last], order[last]
    starts = np.ones(ordered.size, dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    if starts.all():
        return [order]
    first_of_group = np.maximum.accumulate(np.where(starts, np.arange(ordered.size), 0))
    occurrence = np.arange(ordered.size) - first_of_group
    return [order[occurrence == r] for r in range(int(occurrence.max()) + 1)]


def _value_range(column: Column) -> tuple[float, float]:
    """(low, high): the values `column` can store, its domain or its dtype's range."""
    dtype = np.dtype(column.dtype)
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    return column.domain if column.domain is not None else (float(info.min), float(info.max))


def _check_fits(column: Column, name: str, values: np.ndarray, idx: np.ndarray) -> None:
    """Raise unless `values` [B] (of samples `idx`) fit `column`: its domain, its dtype's range, whole numbers
    for an integer column that keeps the latest value."""
    dtype = np.dtype(column.dtype)
    low, high = _value_range(column)
    bad = (values < low) | (values > high)
    if dtype.kind in "iu" and column.rule is assign:
        bad |= values != np.round(values)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        kind = "whole numbers" if dtype.kind in "iu" and column.rule is assign else "values"
        raise ValueError(f"{name} must hold {kind} in [{low:.4g}, {high:.4g}] to be stored in column "
                         f"{column.name!r} ({dtype}): {int(bad.sum())} do not, e.g. {float(values[pos])!r} at index "
                         f"{int(idx[pos])}; nothing was recorded")


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
_MAX_CLASS_ID = 2**20  # labels may exceed N up to this (a subset of a larger label space)
_META = ("labels", "updates", "num_samples", "ema_decay", "state_version")
_MAX_STEP = int(np.iinfo(np.int64).max)


def _check_fits_in_memory(num_samples: int, labels: bool) -> None:
    """Refuse, naming num_samples and the bytes needed, a memory whose eager columns exceed physical memory
    (numpy would raise a MemoryError naming none of it, or the OS would kill the process while filling)."""
    per_sample = sum(np.dtype(c.dtype).itemsize for c in BUILTIN_COLUMNS if not c.lazy) + (8 if labels else 0)
    check_fits_in_memory(f"num_samples={num_samples}", num_samples * per_sample,
                         f"for its columns ({per_sample} bytes per sample)")


class ScoreMemory(Stateful):
    """Per-sample difficulty memory for a data set of `num_samples` examples.

    num_samples: N, the data set's length (refused when the columns would not fit in this machine's memory).
    labels: optional int array [N] of class labels, kept so that guards can balance classes.
    ema_decay: weight of the old value in the moving average: ema <- decay * ema + (1 - decay) * score.

    Statistics (each an array [N]): "score" (float32, latest), "ema" (float32), "seen" (int32 count) and
    "last_step" (int64, -1 when never seen); "label" (int64) when labels were given. Memory: 20 bytes per sample,
    28 with labels. Updates that pass `true_prob`, `correct` or `margin` (see `hardmine.scores.statistics`) also
    keep, from then on: "confidence" and "variability" (running mean and standard deviation of the true-class
    probability: Dataset Cartography, Swayamdipta et al. 2020; 12 bytes per sample), "forgetting" (correct ->
    incorrect flips, Toneva et al. 2019; 5 bytes) and "aum" (mean margin, Pleiss et al. 2020; 8 bytes).
    Further columns are added with `declare`.

    State (`hardmine.state.Stateful`): the checkpointed columns, labels, updates, num_samples and ema_decay at the
    top level (no "config" entry); `load_state_dict(state, use_saved_config=False)` checks all, then assigns.
    """

    state_version = 1
    save_config = False  # num_samples, labels and ema_decay are saved as fields (the layout before the base)

    def __init__(self, num_samples: int, labels: Any = None, ema_decay: float = 0.9) -> None:
        self.num_samples = check_int("num_samples", num_samples)
        self.ema_decay = check_number("ema_decay", ema_decay, 0.0, 1.0, high_inclusive=False)
        _check_fits_in_memory(self.num_samples, labels is not None)
        self._labels = None if labels is None else self._check_labels(labels)
        self._declared: dict[str, Column] = {}
        self._ranges: dict[str, tuple[float, float]] = {}
        self._columns: dict[str, np.ndarray] = {}
        for column in BUILTIN_COLUMNS:
            self.declare(column)
        self._updates = 0
        self._queue = WriteQueue()
        self._written: dict[Hashable, list[np.ndarray]] = {}

    def enqueue(self, indices: np.ndarray, values: dict[str, Any], *, validate: Validate | None = None,
                tag: Hashable = None) -> None:
        """Queue one batch's update (indices: validated int64 [M]; values: {source: float64 [M]} as `check_update`
        returns them, or host copies still arriving, which `validate` checks when they arrive; tag: the writer's
        name for its batches). Every read or write drains the queue first (hardmine.sampling.write_queue)."""
        self._queue.put(QueuedWrite(indices, values, validate, tag))

    @property
    def queued(self) -> int:
        """Batches queued and not written yet."""
        return len(self._queue)

    def drain(self, wait: bool = True) -> None:
        """Write the queued batches now (wait=False: those whose values have arrived, up to the first that has
        not). Raises TypeError or ValueError, naming the argument, for values that arrived bad: that batch is
        dropped, nothing is written."""
        if self._queue.entries:
            self._queue.drain(self._write_queued, wait)

    def take_written(self, tag: Hashable) -> list[np.ndarray]:
        """The distinct indices [M_i] written from the batches queued with `tag` since the last call, one array
        per write, in order (a sampler re-prioritises them)."""
        return self._written.pop(tag, [])

    def _write_queued(self, indices: np.ndarray, sources: dict[str, np.ndarray], batch: np.ndarray | None,
                      count: int, tag: Hashable) -> None:
        distinct = self._write(indices, sources, None, batch, count)
        if tag is not None:
            self._written.setdefault(tag, []).append(distinct)

    def _drain_queue(self) -> None:
        if self._queue.entries:
            self._queue.drain(self._write_queued)

    def declare(self, column: Column) -> None:
        """Add `column` (allocated now unless it is lazy); declaring the same column again does nothing."""
        if not isinstance(column, Column):
            raise TypeError(f"column must be a hardmine.Column, got {type(column).__name__}")
        if not isinstance(column.name, str) or not column.name:
            raise TypeError(f"column.name must be a non-empty string, got {column.name!r}")
        try:
            kind = np.dtype(column.dtype).kind
        except TypeError:
            kind = None
        if kind not in ("b", "i", "u", "f"):
            raise TypeError(f"column {column.name!r} must have a numeric numpy dtype (bool, integer or float), got "
                            f"{column.dtype!r}")
        known = self._declared.get(column.name)
        if known is not None:
            if known != column:
                raise ValueError(f"column {column.name!r} is already declared differently: {known}")
            return
        if column.name in _DERIVED or column.name in ("label", *_META):
            raise ValueError(f"column name {column.name!r} is reserved")
        self._declared[column.name] = column
        self._ranges.clear()
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
        limit = max(self.num_samples, _MAX_CLASS_ID)
        if arr.size and arr.max() >= limit:  # per-class counters are [max + 1]: 1e12 would ask for terabytes
            raise ValueError(f"labels must be class ids below {limit} (dense ids: per-class arrays are sized by the "
                             f"largest), got {arr.max()}; remap them with np.unique(labels, return_inverse=True)[1]")
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
        """Number of `update` calls so far (queued batches included): the default step of the next update."""
        return self._updates + len(self._queue)

    @property
    def columns(self) -> tuple[Column, ...]:
        """The declared columns, in declaration order."""
        return tuple(self._declared.values())

    @property
    def statistics(self) -> tuple[str, ...]:
        """Names accepted by `get`."""
        self._drain_queue()
        return tuple(self._declared) + tuple(_DERIVED) + (("label",) if self._labels is not None else ())

    def tracks(self, name: str) -> bool:
        """Whether statistic `name` is being recorded: always for the eager columns, once passed for lazy ones."""
        self._drain_queue()
        source = _DERIVED[name][0] if name in _DERIVED else name
        return source in self._columns or (name == "label" and self._labels is not None)

    def get(self, name: str, indices: Any = None) -> np.ndarray:
        """A copy of statistic `name` for `indices` [B] (int64), or for all N samples when indices is None.

        "confidence", "variability" and "aum" are NaN, "forgetting" 0, where nothing was observed.
        """
        self._drain_queue()
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
        else:  # a declared, allocated column: check_choice raises for any other name
            source = self._columns[name] if name in self._columns else self._columns[
                check_choice("name", name, self.statistics)]
        if indices is None:
            return source.copy()
        return source[check_indices("indices", indices, self.num_samples)]

    def set(self, name: str, values: Any, indices: Any = None) -> None:
        """Write `values` [B] (or [N] when indices is None) into column `name`, one without a source."""
        column = self._declared.get(name)
        if column is None or column.source is not None:
            writable = [c.name for c in self._declared.values() if c.source is None]
            raise ValueError(f"name must be a declared column without a source, one of {writable}, got {name!r}")
        self._drain_queue()
        idx = np.arange(self.num_samples) if indices is None else check_indices("indices", indices, self.num_samples)
        arr = check_values(name, values, idx.size, indices=None if indices is None else idx)
        _check_fits(column, name, arr, idx)
        keep = last_occurrence(idx)
        self._columns[name][idx[keep]] = arr[keep]

    def check_update(self, indices: Any, scores: Any, step: int | None = None, score_name: str = "scores",
                     **stats: Any) -> tuple[np.ndarray, dict[str, np.ndarray], int]:
        """Everything `update` checks, without writing: (indices [B] int64, {source: values [B] float64}, step).

        score_name: how errors call the scores (the sampler passes "per_sample_loss"). Values must be finite, fit
        the dtype of every column they feed (float32: at most 3.4e38 in magnitude) and lie in the columns' domains
        (`correct` is 0 or 1, `true_prob` in [0, 1]). Reads no column: buffered writes stay buffered.
        """
        idx = check_indices("indices", indices, self.num_samples)
        sources = {"scores": check_values(score_name, scores, idx.size, indices=idx)}
        names = {"scores": score_name}
        self.check_statistics(stats)
        for name, value in stats.items():
            if value is None:
                continue
            arr = to_numpy(value)
            sources[name] = check_values(name, arr.astype(np.int8) if arr.dtype == np.bool_ else arr, idx.size,
                                         indices=idx)
            names[name] = name
        for column in self._declared.values():
            if column.source in sources and column.rule not in _IGNORES_VALUES:
                _check_fits(column, names[column.source], sources[column.source], idx)
        step = check_int("step", self._updates if step is None else step, minimum=0)
        if step > _MAX_STEP:
            raise ValueError(f"step must be at most {_MAX_STEP} (it is stored as int64), got {step}")
        return idx, sources, step

    def value_range(self, source: str) -> tuple[float, float]:
        """(low, high): the real values of `source` ("scores", or a statistic) that fit every column it feeds
        (domains and dtypes, as `check_update` checks them), so that the sampler's fused check of
        the scores is one min and one max; (nan, nan) when an integer column keeps the values)."""
        found = self._ranges.get(source)
        if found is None:
            low, high = -np.inf, np.inf
            for column in self._declared.values():
                if column.source == source and column.rule not in _IGNORES_VALUES:
                    if np.dtype(column.dtype).kind in "iu" and column.rule is assign:
                        low = high = np.nan  # whole numbers: no range says it, every batch gets the full check
                        break
                    lo, hi = _value_range(column)
                    low, high = max(low, lo), min(high, hi)
            found = self._ranges[source] = (float(low), float(high))
        return found

    def check_statistics(self, stats: dict[str, Any]) -> None:
        """Raise TypeError unless every key of `stats` is the source of a declared column."""
        known = {c.source for c in self._declared.values()} - {"scores", None}
        for name in stats:
            if name not in known:
                raise TypeError(f"update() got statistic {name!r}; this memory records {sorted(known)}")

    def update(self, indices: Any, scores: Any, step: int | None = None, **stats: Any) -> None:
        """Record the difficulty `scores` [B] (higher = harder) of the samples `indices` [B] (int64).

        step: the training step of this observation, in [0, 2**63); defaults to the number of updates so far.
        stats: optional [B] statistics of the same samples, by source name: `true_prob`, `correct`, `margin`
        (`hardmine.scores.statistics`) and the sources of declared columns. A duplicated index takes its last
        values. Raises ValueError, naming how many and which indices, when a score or statistic is NaN or inf or
        does not fit its column (see `check_update`); nothing is changed then.
        """
        idx, sources, step = self.check_update(indices, scores, step, **stats)
        self.write(idx, sources, step=step)

    def write(self, indices: np.ndarray, sources: dict[str, np.ndarray], step: int | None = None,
              batch: np.ndarray | None = None, num_batches: int = 1) -> np.ndarray:
        """Write already validated values: what `update` does after its checks (no check is repeated here).

        indices: int64 [M] in range; sources: {"scores": float64 [M], and declared sources [M]}, as
        `check_update` accepts them. With `batch` (int64 [M], non-decreasing batch numbers in [0, num_batches)),
        the M samples are `num_batches` consecutive updates concatenated; the result is exactly that of one
        `update` per batch in order (step `updates + b` for batch b, a duplicate within a batch takes its last
        value, a sample in several batches is updated once per batch), in as many vectorised passes as a sample
        appears in most batches. `step` is the first batch's step (default: `updates`); `updates` grows by
        num_batches. Returns the distinct indices written, in increasing order.
        """
        self._drain_queue()
        return self._write(indices, sources, step, batch, num_batches)

    def _write(self, indices: np.ndarray, sources: dict[str, np.ndarray], step: int | None,
               batch: np.ndarray | None, num_batches: int) -> np.ndarray:
        first = self._updates if step is None else step
        updated = [c for c in self._declared.values() if c.source in sources]
        for column in updated:
            if column.name not in self._columns:
                self._columns[column.name] = column.new(self.num_samples)
        if batch is None or num_batches == 1:
            rounds = [(last_occurrence(indices), first)]
        else:
            rounds = [(keep, first + batch[keep]) for keep in _sequential_rounds(indices, batch)]
        for keep, steps in rounds:
            idx = indices[keep]
            for column in updated:
                column.rule(self, self._columns[column.name], idx, sources[column.source][keep], steps)
        self._updates += num_batches
        return indices[rounds[0][0]]

    def _state_values(self) -> dict[str, Any]:
        """Every checkpointed column (declaration order), then labels, updates, num_samples, ema_decay: the
        state's layout (the base saves arrays as CPU tensors and adds state_version; no "config" entry: the
        constructor's arguments are saved as fields)."""
        self._drain_queue()
        values: dict[str, Any] = {name: arr for name, arr in self._columns.items()
                                  if self._declared[name].checkpointed}
        values.update(labels=self._labels, updates=self._updates, num_samples=self.num_samples,
                      ema_decay=self.ema_decay)
        return values

    def _parse_state(self, state: Any, num_samples: int | None = None, use_saved_config: bool = False) -> Parsed:
        """Check a `state_dict()` whole; nothing changes (`load_state_dict` then assigns it in one step).

        Each column must have its dtype and shape [N]; counts are >= 0, steps >= -1, float columns finite except
        where they are NaN before a first observation ("score" and "ema" have a value wherever seen > 0), and
        values lie in the column's domain. A saved ema_decay or labels array that differs from this memory's is an
        error naming both, unless `use_saved_config=True` takes the saved ones. The columns are declared at run
        time (`declare`), so the schema is this memory's columns: a lazy one may be absent (not observed yet).
        """
        self._drain_queue()
        required = [c.name for c in self._declared.values() if c.checkpointed and not c.lazy]
        check_state(state, "ScoreMemory", self.state_version, [*required, *_META])
        if state["num_samples"] != self.num_samples:
            raise ValueError(f"state holds num_samples={state['num_samples']}, this memory has {self.num_samples}")
        unknown = [k for k in state if k not in _META and k not in self._declared]
        if unknown:
            raise ValueError(f"state holds columns {unknown} this memory does not declare (see ScoreMemory.declare)")
        columns = {name: arr for name, arr in self._columns.items() if not self._declared[name].checkpointed}
        for column in self._declared.values():
            if not column.checkpointed or state.get(column.name) is None:
                continue
            columns[column.name] = _check_saved_column(column, state[column.name], self.num_samples)
        for name in ("score", "ema"):
            missing = (columns["seen"] > 0) & np.isnan(columns[name])
            if missing.any():
                raise ValueError(f"state[{name!r}] is NaN at {int(missing.sum())} sample(s) with seen > 0, e.g. "
                                 f"index {int(np.flatnonzero(missing)[0])}")
        self._check_statistics_agree(columns)
        labels = None if state["labels"] is None else self._check_labels(state["labels"])
        updates = check_int("state['updates']", state["updates"], minimum=0)
        ema_decay = check_number("state['ema_decay']", state["ema_decay"], 0.0, 1.0, high_inclusive=False)
        compare_config("ScoreMemory", {"ema_decay": ema_decay, "labels": labels},
                       {"ema_decay": self.ema_decay, "labels": self._labels}, use_saved_config)
        order = [name for name in self._declared if name in columns]
        return Parsed(None, {"columns": {name: columns[name] for name in order}, "labels": labels,
                             "updates": updates, "ema_decay": ema_decay})

    def _assign_state(self, values: dict[str, Any]) -> None:
        self._columns, self._labels = values["columns"], values["labels"]
        self._updates, self.ema_decay = values["updates"], values["ema_decay"]

    def _check_statistics_agree(self, columns: dict[str, np.ndarray]) -> None:
        """Raise unless the saved columns of each optional statistic agree: all of them or none, and, where its
        count column says nothing was observed, every other column at its fill value (NaN where it has one),
        and values that are not NaN where something was."""
        groups: dict[str, list[Column]] = {}
        for column in self._declared.values():
            if column.lazy and column.checkpointed:
                groups.setdefault(column.source, []).append(column)
        for source, group in groups.items():
            present = [c.name for c in group if c.name in columns]
            if present and len(present) < len(group):
                missing = [c.name for c in group if c.name not in columns]
                raise ValueError(f"state holds {present} but not {missing}: the columns of statistic {source!r} "
                                 "are saved together")
            counts = [c for c in group if c.rule is _count]
            if not present or not counts:
                continue
            never = columns[counts[0].name] == 0
            for column in group:
                if column is counts[0]:
                    continue
                values = columns[column.name].astype(np.float64)
                fill_nan = np.isnan(column.fill)
                at_fill = np.isnan(values) if fill_nan else values == column.fill
                bad = never & ~at_fill
                if fill_nan:
                    bad |= ~never & np.isnan(values)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise ValueError(f"state[{column.name!r}] disagrees with state[{counts[0].name!r}] at "
                                     f"{int(bad.sum())} sample(s), e.g. index {i}: {column.name}={values[i]} with "
                                     f"{counts[0].name}={int(columns[counts[0].name][i])}")


def _check_saved_column(column: Column, value: Any, num_samples: int) -> np.ndarray:
    """A saved column [N], checked: its dtype and shape, finite (NaN only where the fill is NaN), integer
    columns at least their fill (counts >= 0, steps >= -1), values in the column's domain."""
    name = f"state[{column.name!r}]"
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        raise ValueError(f"{name} must be an array or tensor, got {type(value).__name__}")
    arr = np.array(to_numpy(value))
    dtype = np.dtype(column.dtype)
    if arr.shape != (num_samples,) or arr.dtype != dtype:
        raise ValueError(f"{name} must be {dtype} of shape ({num_samples},), got {arr.dtype} of shape "
                         f"{tuple(arr.shape)}")
    if dtype.kind == "f":
        bad = np.isinf(arr) | (np.isnan(arr) if not np.isnan(column.fill) else False)
        if bad.any():
            raise ValueError(f"{name} must be finite: {int(bad.sum())} value(s) are not, e.g. {arr[bad][0]} at "
                             f"index {int(np.flatnonzero(bad)[0])}")
    values = arr[~np.isnan(arr)] if dtype.kind == "f" else arr
    low = column.fill if dtype.kind in "iu" else -np.inf
    high = np.inf
    if column.domain is not None:
        low, high = min(low, column.domain[0]) if dtype.kind in "iu" else column.domain[0], column.domain[1]
    if values.size and (values.min() < low or values.max() > high):
        worst = values.min() if values.min() < low else values.max()
        raise ValueError(f"{name} must hold values in [{low}, {high}], got {worst}")
    return arr
