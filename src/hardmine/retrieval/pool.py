"""NegativePool: mined negatives for a training run, re-mined with the current encoder as it drifts (ANCE)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hardmine._checks import as_generator, check_indices, check_int, check_number
from hardmine.retrieval.result import MinedNegatives

Encoder = Callable[[np.ndarray], Any]
Miner = Callable[..., MinedNegatives]


@dataclass(frozen=True)
class RefreshReport:
    """One re-mining: at `step`, why ("initial", "schedule", "drift"), the drift measured then (NaN if not
    measured), and how many of the `total` negative slots now hold an id they did not hold before."""

    step: int
    reason: str
    drift: float
    changed: int
    total: int

    @property
    def fraction_changed(self) -> float:
        return self.changed / self.total if self.total else 0.0


class NegativePool:
    """Hard negatives for every training query, refreshed with the current encoder.

    encode_queries / encode_corpus: map int64 ids [m] to embeddings [m, d] with the current model (batching is
    theirs). mine: called as mine(query_emb, corpus_emb, seed=...) -> MinedNegatives, e.g.
    functools.partial(mine_hard_negatives, positives=pos, num_negatives=4, relative_margin=0.05, progress=False).
    Re-mining happens in `step(step)` when `refresh_every` steps have passed since the last one, or, with
    `drift_threshold`, when every `drift_check_every` steps the mean cosine distance between `num_probe` corpus
    rows re-encoded now and at the last mining exceeds the threshold. Construction does no encoding or mining.
    """

    def __init__(self, encode_queries: Encoder, encode_corpus: Encoder, mine: Miner, num_queries: int,
                 corpus_size: int, refresh_every: int | None = 1000, drift_threshold: float | None = None,
                 drift_check_every: int = 100, num_probe: int = 256,
                 seed: int | np.random.Generator | None = 0) -> None:
        self.encode_queries, self.encode_corpus, self.mine = encode_queries, encode_corpus, mine
        self.num_queries = check_int("num_queries", num_queries)
        self.corpus_size = check_int("corpus_size", corpus_size)
        self.refresh_every = None if refresh_every is None else check_int("refresh_every", refresh_every)
        self.drift_threshold = None if drift_threshold is None else check_number("drift_threshold",
                                                                                  drift_threshold, 0.0, 2.0)
        self.drift_check_every = check_int("drift_check_every", drift_check_every)
        self.num_probe = check_int("num_probe", num_probe)
        self._seed_key = int(as_generator(seed).integers(2**31))
        self._indices: np.ndarray | None = None
        self._probe_ids = np.zeros(0, dtype=np.int64)
        self._probe_emb = np.zeros((0, 0), dtype=np.float32)
        self._last_refresh = -1
        self._last_check = -1
        self.history: list[RefreshReport] = []

    @property
    def mined(self) -> bool:
        return self._indices is not None

    def negatives(self, query_ids: Any) -> np.ndarray:
        """The current negatives of `query_ids` (int [B]): int64 [B, n], -1 where fewer were found."""
        if self._indices is None:
            raise RuntimeError("the pool has no negatives yet: call step(step) or refresh(step) first")
        return self._indices[check_indices("query_ids", query_ids, self.num_queries)]

    def step(self, step: int) -> RefreshReport | None:
        """Call once per training step: mines on the first call, then re-mines when due. Returns the report of a
        re-mining, or None."""
        step = check_int("step", step, minimum=0)
        if self._indices is None:
            return self.refresh(step, "initial")
        if self.refresh_every is not None and step - self._last_refresh >= self.refresh_every:
            return self.refresh(step, "schedule")
        if self.drift_threshold is not None and step - self._last_check >= self.drift_check_every:
            self._last_check = step
            drift = self.drift()
            if drift > self.drift_threshold:
                return self.refresh(step, "drift", drift)
        return None

    def drift(self) -> float:
        """Mean cosine distance (0 = unchanged, 2 = opposite) between the probe rows re-encoded now and at the
        last mining."""
        if self._indices is None:
            raise RuntimeError("the pool has no negatives yet: call step(step) or refresh(step) first")
        now = np.asarray(self.encode_corpus(self._probe_ids), dtype=np.float32)
        return float(np.mean(1.0 - _row_cosine(now, self._probe_emb)))

    def refresh(self, step: int, reason: str = "manual", drift: float = float("nan")) -> RefreshReport:
        """Re-encode every query and corpus row with the current encoder and mine again now."""
        step = check_int("step", step, minimum=0)
        query_emb = self.encode_queries(np.arange(self.num_queries, dtype=np.int64))
        corpus_emb = self.encode_corpus(np.arange(self.corpus_size, dtype=np.int64))
        mined = self.mine(query_emb, corpus_emb, seed=self._seed_key + len(self.history))
        new = np.asarray(mined.indices, dtype=np.int64)
        if new.shape[0] != self.num_queries:
            raise ValueError(f"mine returned negatives for {new.shape[0]} queries, expected {self.num_queries}")
        changed = _changed_slots(self._indices, new)
        rng = np.random.default_rng(self._seed_key + len(self.history))
        self._probe_ids = np.sort(rng.choice(self.corpus_size, min(self.num_probe, self.corpus_size), replace=False))
        self._probe_emb = np.asarray(corpus_emb[self._probe_ids], dtype=np.float32)
        self._indices, self._last_refresh, self._last_check = new, step, step
        report = RefreshReport(step, reason, float(drift), changed, int((new >= 0).sum()))
        self.history.append(report)
        return report

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: negatives, probe rows and their embeddings, step counters, history."""
        return {
            "indices": None if self._indices is None else self._indices.copy(),
            "probe_ids": self._probe_ids.copy(),
            "probe_emb": self._probe_emb.copy(),
            "last_refresh": self._last_refresh,
            "last_check": self._last_check,
            "seed_key": self._seed_key,
            "history": [asdict(r) for r in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from `state_dict()` (arrays are copied)."""
        indices = state["indices"]
        if indices is not None and np.asarray(indices).shape[0] != self.num_queries:
            raise ValueError(f"state holds negatives for {np.asarray(indices).shape[0]} queries, "
                             f"this pool has {self.num_queries}")
        self._indices = None if indices is None else np.array(indices, dtype=np.int64)
        self._probe_ids = np.array(state["probe_ids"], dtype=np.int64)
        self._probe_emb = np.array(state["probe_emb"], dtype=np.float32)
        self._last_refresh, self._last_check = int(state["last_refresh"]), int(state["last_check"])
        self._seed_key = int(state["seed_key"])
        self.history = [RefreshReport(**r) for r in state["history"]]


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-12)


def _changed_slots(old: np.ndarray | None, new: np.ndarray) -> int:
    """Found negatives in `new` that were not among the same query's negatives in `old` (all, when no `old`)."""
    valid = new >= 0
    if old is None:
        return int(valid.sum())
    width = int(max(old.max(initial=-1), new.max(initial=-1))) + 2
    rows_new = np.nonzero(valid)[0]
    keys_new = rows_new * width + new[valid]
    old_valid = old >= 0
    keys_old = np.nonzero(old_valid)[0] * width + old[old_valid]
    return int((~np.isin(keys_new, keys_old)).sum())
