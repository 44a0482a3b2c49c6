"""ScoreMemory: what the model found hard, one flat array per statistic, indexed by data set index."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hardmine._checks import check_fraction, check_indices, check_positive_int, check_values, last_occurrence, to_numpy

_DTYPES: dict[str, np.dtype] = {
    "score": np.dtype(np.float32),      # latest difficulty score (NaN before the first visit)
    "ema": np.dtype(np.float32),        # exponential moving average of the score (NaN before the first visit)
    "seen": np.dtype(np.int32),         # times the sample was scored
    "last_step": np.dtype(np.int64),    # step of the latest visit (-1 before the first visit)
}
# Arrays allocated on the first update that passes the statistic they track: (dtype, initial value).
_OPTIONAL: dict[str, tuple[np.dtype, float]] = {
    "prob_count": (np.dtype(np.int32), 0),        # true_prob: observations
    "prob_mean": (np.dtype(np.float32), np.nan),  # true_prob: running mean (cartography's confidence)
    "prob_m2": (np.dtype(np.float32), 0.0),       # true_prob: running sum of squared deviations (Welford)
    "last_correct": (np.dtype(np.int8), -1),      # correct: the latest value (-1 before the first)
    "forgetting": (np.dtype(np.int32), 0),        # correct: correct -> incorrect transitions (Toneva et al.)
    "margin_count": (np.dtype(np.int32), 0),      # margin: observations
    "margin_sum": (np.dtype(np.float32), 0.0),    # margin: running sum (area under the margin, Pleiss et al.)
}
_STATS = {"true_prob": ("prob_count", "prob_mean", "prob_m2"), "correct": ("last_correct", "forgetting"),
          "margin": ("margin_count", "margin_sum")}
_DERIVED = ("confidence", "variability", "aum")


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
    """

    def __init__(self, num_samples: int, labels: Any = None, ema_decay: float = 0.9) -> None:
        self.num_samples = check_positive_int("num_samples", num_samples)
        self.ema_decay = check_fraction("ema_decay", ema_decay, 0.0, 1.0, high_inclusive=False)
        self._labels = None if labels is None else self._check_labels(labels)
        self._arrays = {
            "score": np.full(self.num_samples, np.nan, dtype=_DTYPES["score"]),
            "ema": np.full(self.num_samples, np.nan, dtype=_DTYPES["ema"]),
            "seen": np.zeros(self.num_samples, dtype=_DTYPES["seen"]),
            "last_step": np.full(self.num_samples, -1, dtype=_DTYPES["last_step"]),
        }
        self._updates = 0

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            dtype, fill = _OPTIONAL[name]
            self._arrays[name] = np.full(self.num_samples, fill, dtype=dtype)
        return self._arrays[name]

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
    def statistics(self) -> tuple[str, ...]:
        """Names accepted by `get`."""
        return tuple(_DTYPES) + tuple(_OPTIONAL) + _DERIVED + (("label",) if self._labels is not None else ())

    def tracks(self, name: str) -> bool:
        """Whether statistic `name` is being recorded: always for the base ones, once passed for the others."""
        sources = {"confidence": "prob_mean", "variability": "prob_m2", "aum": "margin_sum"}
        return sources.get(name, name) in self._arrays or (name == "label" and self._labels is not None)

    def get(self, name: str, indices: Any = None) -> np.ndarray:
        """A copy of statistic `name` for `indices` [B] (int64), or for all N samples when indices is None.

        "confidence", "variability" and "aum" are NaN, "forgetting" 0, where nothing was observed.
        """
        if name in _DERIVED:
            return self._derived(name, indices)
        if name in _OPTIONAL and name not in self._arrays:
            dtype, fill = _OPTIONAL[name]
            n = self.num_samples if indices is None else check_indices("indices", indices, self.num_samples).size
            return np.full(n, fill, dtype=dtype)
        if name == "label":
            if self._labels is None:
                raise ValueError("name 'label' is not available: this ScoreMemory was built without labels")
            source = self._labels
        elif name in self._arrays:
            source = self._arrays[name]
        else:
            raise ValueError(f"name must be one of {self.statistics}, got {name!r}")
        if indices is None:
            return source.copy()
        return source[check_indices("indices", indices, self.num_samples)]

    def _derived(self, name: str, indices: Any) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            if name == "confidence":
                return self.get("prob_mean", indices)
            if name == "variability":
                count = self.get("prob_count", indices)
                return np.where(count > 0, np.sqrt(self.get("prob_m2", indices) / count), np.nan).astype(np.float32)
            count = self.get("margin_count", indices)
            return np.where(count > 0, self.get("margin_sum", indices) / count, np.nan).astype(np.float32)

    def update(self, indices: Any, scores: Any, step: int | None = None, *, true_prob: Any = None,
               correct: Any = None, margin: Any = None) -> None:
        """Record the difficulty `scores` [B] (higher = harder) of the samples `indices` [B] (int64).

        step: the training step of this observation; defaults to the number of updates so far.
        true_prob, correct, margin: optional [B] statistics of the same samples (`hardmine.scores.statistics`).
        A duplicated index takes its last values. Raises ValueError, naming how many and which indices, when a
        score or statistic is NaN or inf; nothing is changed then.
        """
        idx = check_indices("indices", indices, self.num_samples)
        values = check_values("scores", scores, idx.size, indices=idx)
        extra = {}
        if true_prob is not None:
            extra["true_prob"] = check_values("true_prob", true_prob, idx.size, indices=idx)
        if correct is not None:
            extra["correct"] = check_values("correct", to_numpy(correct).astype(np.int8), idx.size, indices=idx)
        if margin is not None:
            extra["margin"] = check_values("margin", margin, idx.size, indices=idx)
        if step is None:
            step = self._updates
        step = check_positive_int("step", step, minimum=0)
        keep = last_occurrence(idx)
        idx, values = idx[keep], values[keep].astype(np.float32)
        for name, stat in extra.items():
            self._record(name, idx, stat[keep])
        arrays = self._arrays
        first = arrays["seen"][idx] == 0
        old = arrays["ema"][idx]
        arrays["ema"][idx] = np.where(first, values, self.ema_decay * old + (1.0 - self.ema_decay) * values)
        arrays["score"][idx] = values
        arrays["seen"][idx] += 1
        arrays["last_step"][idx] = step
        self._updates += 1

    def _record(self, name: str, idx: np.ndarray, values: np.ndarray) -> None:
        if name == "true_prob":
            count, mean, m2 = (self._array(k) for k in _STATS[name])
            n = count[idx] + 1
            old = np.nan_to_num(mean[idx].astype(np.float64))
            new = old + (values - old) / n
            m2[idx] = m2[idx] + (values - old) * (values - new)
            mean[idx], count[idx] = new, n
        elif name == "correct":
            last, forgetting = (self._array(k) for k in _STATS[name])
            forgetting[idx] += (last[idx] == 1) & (values == 0)
            last[idx] = values
        else:
            count, total = (self._array(k) for k in _STATS[name])
            count[idx] += 1
            total[idx] += values

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of every array as a CPU tensor, plus counters: loadable with torch.load(weights_only=True)."""
        state: dict[str, Any] = {name: torch.from_numpy(arr.copy()) for name, arr in self._arrays.items()}
        state["labels"] = None if self._labels is None else torch.from_numpy(self._labels.copy())
        state["updates"] = self._updates
        state["num_samples"] = self.num_samples
        state["ema_decay"] = self.ema_decay
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; everything is checked before anything is changed."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        missing = [k for k in (*_DTYPES, "labels", "updates", "num_samples", "ema_decay") if k not in state]
        if missing:
            raise ValueError(f"state is missing keys {missing}")
        if state["num_samples"] != self.num_samples:
            raise ValueError(f"state holds num_samples={state['num_samples']}, this memory has {self.num_samples}")
        arrays = {}
        optional = {k: dtype for k, (dtype, _) in _OPTIONAL.items() if state.get(k) is not None}
        for name, dtype in {**_DTYPES, **optional}.items():
            arr = to_numpy(state[name])
            if arr.shape != (self.num_samples,) or arr.dtype != dtype:
                raise ValueError(f"state[{name!r}] must be {dtype} of shape ({self.num_samples},), "
                                 f"got {arr.dtype} of shape {tuple(arr.shape)}")
            arrays[name] = arr.copy()
        labels = None if state["labels"] is None else self._check_labels(state["labels"])
        updates = check_positive_int("state['updates']", state["updates"], minimum=0)
        ema_decay = check_fraction("state['ema_decay']", state["ema_decay"], 0.0, 1.0, high_inclusive=False)
        self._arrays, self._labels, self._updates, self.ema_decay = arrays, labels, updates, ema_decay
