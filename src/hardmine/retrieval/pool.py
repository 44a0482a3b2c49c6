"""NegativePool: mined negatives for a training run, re-mined with the current encoder as it drifts (ANCE)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from hardmine._checks import as_generator, check_indices, check_int, check_number
from hardmine._deprecated import renamed
from hardmine.retrieval.result import MinedNegatives
from hardmine.state import Array, Field, Int, Stateful, check_fields

Encoder = Callable[[np.ndarray], Any]
Miner = Callable[..., MinedNegatives]


@dataclass(frozen=True)
class RefreshRecord:
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


class NegativePool(Stateful):
    """Hard negatives for every training query, refreshed with the current encoder.

    encode_queries / encode_corpus: map int64 ids [m] to embeddings [m, d] with the current model (batching is
    theirs). mine: called as mine(query_emb, corpus_emb, seed=...) -> MinedNegatives, e.g.
    functools.partial(mine_hard_negatives, positives=pos, num_negatives=4, relative_margin=0.05, progress=False).
    Re-mining happens in `step(step)` when `refresh_every` steps have passed since the last one, or, with
    `drift_threshold`, when every `drift_check_every` steps the mean cosine distance between `num_probe` corpus
    rows re-encoded now and at the last mining exceeds the threshold. Construction does no encoding or mining.
    `history` keeps the records of the last `MAX_HISTORY` (1,000) re-minings, so that a run that re-mines every
    step keeps a bounded state; `refreshes` counts them all.
    """

    MAX_HISTORY = 1000

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
        self.history: list[RefreshRecord] = []
        self.refreshes = 0

    @property
    def mined(self) -> bool:
        return self._indices is not None

    def negatives(self, query_ids: Any) -> np.ndarray:
        """The current negatives of `query_ids` (int [B]): int64 [B, n], -1 where fewer were found."""
        if self._indices is None:
            raise RuntimeError("the pool has no negatives yet: call step(step) or refresh(step) first")
        return self._indices[check_indices("query_ids", query_ids, self.num_queries)]

    def step(self, step: int) -> RefreshRecord | None:
        """Call once per training step: mines on the first call, then re-mines when due. Returns the record of a
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

    def refresh(self, step: int, reason: str = "manual", drift: float = float("nan")) -> RefreshRecord:
        """Re-encode every query and corpus row with the current encoder and mine again now."""
        step = check_int("step", step, minimum=0)
        query_emb = self.encode_queries(np.arange(self.num_queries, dtype=np.int64))
        corpus_emb = self.encode_corpus(np.arange(self.corpus_size, dtype=np.int64))
        mined = self.mine(query_emb, corpus_emb, seed=self._seed_key + self.refreshes)
        new = np.asarray(mined.indices, dtype=np.int64)
        if new.shape[0] != self.num_queries:
            raise ValueError(f"mine returned negatives for {new.shape[0]} queries, expected {self.num_queries}")
        changed = _changed_slots(self._indices, new)
        rng = np.random.default_rng(self._seed_key + self.refreshes)
        self._probe_ids = np.sort(rng.choice(self.corpus_size, min(self.num_probe, self.corpus_size), replace=False))
        self._probe_emb = np.asarray(corpus_emb[self._probe_ids], dtype=np.float32)
        self._indices, self._last_refresh, self._last_check = new, step, step
        record = RefreshRecord(step, reason, float(drift), changed, int((new >= 0).sum()))
        self._record(record)
        return record

    def _record(self, record: RefreshRecord) -> None:
        """Append `record` to the history, keeping the last MAX_HISTORY."""
        self.history.append(record)
        del self.history[:-self.MAX_HISTORY]
        self.refreshes += 1

    def start_from(self, indices: Any, step: int = 0) -> RefreshRecord:
        """Take negatives mined elsewhere (int [num_queries, n], -1 = none) as the pool's first ones, without
        mining: only the drift probe rows are encoded. Counts as a refresh at `step` with reason "given"."""
        step = check_int("step", step, minimum=0)
        new = np.asarray(indices)
        if new.dtype.kind not in "iu" or new.ndim != 2 or new.shape[0] != self.num_queries:
            raise ValueError(f"indices must be an integer array [{self.num_queries}, n], got "
                             f"{new.dtype} {tuple(new.shape)}")
        if new.size and (new.min() < -1 or new.max() >= self.corpus_size):
            raise ValueError(f"indices must be corpus ids in [0, {self.corpus_size}) or -1")
        new = new.astype(np.int64)
        rng = np.random.default_rng(self._seed_key + self.refreshes)
        probe_ids = np.sort(rng.choice(self.corpus_size, min(self.num_probe, self.corpus_size), replace=False))
        self._probe_emb = np.asarray(self.encode_corpus(probe_ids), dtype=np.float32)
        self._probe_ids = probe_ids
        self._indices, self._last_refresh, self._last_check = new, step, step
        record = RefreshRecord(step, "given", float("nan"), int((new >= 0).sum()), int((new >= 0).sum()))
        self._record(record)
        return record

    # state: negatives, probe rows and their embeddings, step counters, the seed, the history; the saved
    # configuration (the numbers of __init__) is derived from its signature
    state_fields = {"indices": Array("int64", "Q", ndim=2, low=-1, below="C", optional=True),
                    "probe_ids": Array("int64", low=0, below="C"),
                    "probe_emb": Array("float32", ndim=2, empty_ok=True),
                    "last_refresh": Int(-1), "last_check": Int(-1), "seed_key": Int(0), "history": Field("any"),
                    "refreshes": Int(0)}
    config_exclude = ("encode_queries", "encode_corpus", "mine", "seed")  # callables; the seed is in seed_key
    config_fixed = ("num_queries", "corpus_size")

    def _state_sizes(self) -> dict[str, int]:
        return {"Q": self.num_queries, "C": self.corpus_size}

    def _state_values(self) -> dict[str, Any]:
        return {**super()._state_values(), "history": [asdict(r) for r in self.history]}

    def _upgrade_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """A state saved before the count of refreshes: every refresh is in its history."""
        if "refreshes" in state or not isinstance(state.get("history"), list):
            return state
        return {**state, "refreshes": len(state["history"])}

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """Negatives [num_queries, n], probe embeddings [probes, d], a well-formed history of at most
        MAX_HISTORY reports and at least as many refreshes."""
        indices, probe_ids, probe_emb = values["indices"], values["probe_ids"], values["probe_emb"]
        if indices is not None and indices.ndim != 2:
            raise ValueError(f"NegativePool state['indices'] must be 2-D [num_queries, n], got shape {indices.shape}")
        if probe_emb.shape[0] != probe_ids.shape[0] or (probe_emb.size and probe_emb.ndim != 2):
            raise ValueError(f"NegativePool state['probe_emb'] must be [{probe_ids.shape[0]}, d], got shape "
                             f"{probe_emb.shape}")
        history = _check_history(values["history"])
        if len(history) > self.MAX_HISTORY:
            raise ValueError(f"NegativePool state['history'] holds {len(history)} reports, more than the "
                             f"{self.MAX_HISTORY} a pool keeps")
        if values["refreshes"] < len(history):
            raise ValueError(f"NegativePool state['refreshes'] must be an integer >= {len(history)} (the reports in "
                             f"its history), got {values['refreshes']!r}")
        return {**values, "history": history, "probe_emb": probe_emb.reshape(probe_ids.size, -1)}




def _check_history(history: Any) -> list[RefreshRecord]:
    """The saved refresh reports, each checked (step >= 0, a reason, counts with changed <= total)."""
    if not isinstance(history, list):
        raise ValueError(f"NegativePool state['history'] must be a list, got {type(history).__name__}")
    schema = {"step": Int(0), "reason": Field("str"),
              "drift": Field("float", finite=False), "changed": Int(0), "total": Int(0)}
    reports = []
    for i, entry in enumerate(history):
        values = check_fields(entry, schema, f"NegativePool state['history'][{i}]")
        if values["changed"] > values["total"]:
            raise ValueError(f"NegativePool state['history'][{i}] has changed={values['changed']} > "
                             f"total={values['total']}")
        reports.append(RefreshRecord(**values))
    return reports


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


__getattr__ = renamed(__name__, {
    "RefreshReport": ("from hardmine.retrieval import RefreshRecord", lambda: RefreshRecord)})
