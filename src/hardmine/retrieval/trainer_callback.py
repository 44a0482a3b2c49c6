"""RefreshNegativesCallback: re-mine a sentence-transformers training set's negatives with the model being trained.

The callback owns a NegativePool over the training set's (anchor, positive) texts. Every `refresh_every` steps,
or when the drift measured on probe texts passes `drift_threshold`, it re-encodes queries and corpus with the
current model and mines again; the negative columns the trainer reads are swapped in place (a datasets transform
on the training set), so batches drawn after a refresh carry the new negatives. Its state is written into every
trainer checkpoint (`hardmine_negatives.pt`, no pickle) and read back when training resumes from one.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from hardmine._checks import check_int
from hardmine.checkpoint import load_state, save_state
from hardmine.retrieval.encode import encode_side
from hardmine.retrieval.mining import _filters, mine_hard_negatives
from hardmine.retrieval.pool import NegativePool, RefreshRecord
from hardmine.retrieval.texts import TextPairs, check_texts
from hardmine.state import Int, Stateful

STATE_FILE = "hardmine_negatives.pt"


class RefreshNegativesCallback(TrainerCallback, Stateful):
    """Pass it to a SentenceTransformerTrainer together with the same `train_dataset`.

    train_dataset: a `datasets.Dataset` with anchor, positive and negative columns (e.g. mine_from_dataset(...,
    output_format="triplet" or "n-tuple")). negative_columns: default every column named negative or
    negative_<i>; their count is the number of negatives mined per query. corpus: candidate texts (default: the
    positives and the current negatives). refresh_every / drift_threshold / drift_check_every / num_probe: as
    NegativePool. Mining keywords (range_min, range_max, relative_margin, absolute_margin, max_score, min_score,
    sampling, index, range_rule) go to mine_hard_negatives. A query with fewer negatives found keeps the ones
    it had. mine_at_start: mine with the model as it is when training starts; by default the dataset's own
    negatives are the first ones (they were mined with that model: one encoding pass saved). `history` lists
    every re-mining (RefreshRecord).
    """

    def __init__(self, train_dataset: Any, corpus: list[str] | None = None, anchor_column_name: str | None = None,
                 positive_column_name: str | None = None, negative_columns: list[str] | None = None,
                 refresh_every: int | None = 1000, drift_threshold: float | None = None,
                 drift_check_every: int = 100, num_probe: int = 256, batch_size: int = 64,
                 range_rule: str = "survivors", mine_at_start: bool = False, seed: int = 0,
                 **mine_kwargs: Any) -> None:
        columns = getattr(train_dataset, "column_names", None)
        if not isinstance(columns, list):
            raise TypeError(f"train_dataset must be a datasets.Dataset, got {type(train_dataset).__name__}")
        anchor = anchor_column_name or columns[0]
        positive = positive_column_name or (columns[1] if len(columns) > 1 else None)
        negatives = negative_columns or [c for c in columns if c == "negative" or c.startswith("negative_")]
        for name, value in (("anchor_column_name", anchor), ("positive_column_name", positive)):
            if value not in columns:
                raise ValueError(f"{name} = {value!r} is not a column of train_dataset (columns: {columns})")
        missing = [c for c in negatives if c not in columns]
        if not negatives or missing:
            raise ValueError(f"negative_columns {missing or negatives} not found in train_dataset (columns: {columns})")
        unknown = set(mine_kwargs) - {"range_min", "range_max", "relative_margin", "absolute_margin", "max_score",
                                      "min_score", "sampling", "index", "batch_size"}
        if unknown:
            raise TypeError(f"unknown mining arguments: {sorted(unknown)}")
        n = len(negatives)
        _filters(n, mine_kwargs.get("range_min", 0), mine_kwargs.get("range_max"), mine_kwargs.get("max_score"),
                 mine_kwargs.get("min_score"), mine_kwargs.get("absolute_margin"),
                 mine_kwargs.get("relative_margin"), range_rule)
        anchors = check_texts(f"train_dataset[{anchor!r}]", train_dataset[anchor])
        positives = check_texts(f"train_dataset[{positive!r}]", train_dataset[positive])
        if corpus is None:
            corpus = [t for c in negatives for t in check_texts(f"train_dataset[{c!r}]", train_dataset[c])]
        self.texts = TextPairs.from_rows(anchors, positives, check_texts("corpus", corpus))
        self.dataset, self.anchor, self.negative_columns = train_dataset, anchor, negatives
        self.batch_size = check_int("batch_size", batch_size)
        self._model: Any = None
        mine = functools.partial(mine_hard_negatives, positives=self.texts.positives, num_negatives=n,
                                 progress=False, range_rule=range_rule, **mine_kwargs)
        self.pool = NegativePool(self._encoder("query", self.texts.queries),
                                 self._encoder("document", self.texts.corpus), mine,
                                 num_queries=len(self.texts.queries), corpus_size=len(self.texts.corpus),
                                 refresh_every=refresh_every, drift_threshold=drift_threshold,
                                 drift_check_every=drift_check_every, num_probe=num_probe, seed=seed)
        self._query_of = {q: i for i, q in enumerate(self.texts.queries)}
        self.mine_at_start = bool(mine_at_start)
        self._given = self._dataset_negatives(train_dataset)
        self._targets: list[Any] = []

    @property
    def history(self) -> list[RefreshRecord]:
        return self.pool.history

    def _dataset_negatives(self, dataset: Any) -> np.ndarray:
        """int64 [queries, n]: each query's negatives in its first row of the dataset, -1 if not in the corpus."""
        corpus_idx = {t: i for i, t in enumerate(self.texts.corpus)}
        out = np.full((len(self.texts.queries), len(self.negative_columns)), -1, dtype=np.int64)
        first = np.full(len(self.texts.queries), -1, dtype=np.int64)
        rows = np.arange(len(self.texts.row_query))[::-1]
        first[self.texts.row_query[rows]] = rows
        for j, column in enumerate(self.negative_columns):
            values = dataset[column]
            out[:, j] = [corpus_idx.get(values[r], -1) for r in first.tolist()]
        return out

    def _encoder(self, side: str, texts: list[str]):
        def encode(ids: np.ndarray) -> np.ndarray:
            model = self._model
            was_training = getattr(model, "training", False)
            try:
                return encode_side(model, [texts[i] for i in ids.tolist()], side, self.batch_size, progress=False)
            finally:
                if was_training:
                    model.train()
        return encode

    def _swap(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The datasets transform: each row's negative columns from the pool (kept where the pool has none)."""
        if not self.pool.mined:
            return batch
        ids = np.array([self._query_of.get(a, -1) for a in batch[self.anchor]], dtype=np.int64)
        known = ids >= 0
        negs = np.full((len(ids), len(self.negative_columns)), -1, dtype=np.int64)
        if known.any():
            negs[known] = self.pool.negatives(ids[known])
        out = dict(batch)
        for j, column in enumerate(self.negative_columns):
            out[column] = [self.texts.corpus[c] if c >= 0 else old for c, old in zip(negs[:, j].tolist(),
                                                                                        batch[column])]
        return out

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._model = model
        loader = kwargs.get("train_dataloader")
        targets = [self.dataset] + [d for d in [getattr(loader, "dataset", None)] if d is not None
                                    and d is not self.dataset and hasattr(d, "set_transform")]
        for d in targets:
            d.set_transform(self._swap)
        self._targets = targets
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}" / STATE_FILE
        if state.global_step > 0 and path.is_file():
            self.load_state_dict(load_state(path))

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self._model = model if model is not None else self._model
        if not self.pool.mined and not self.mine_at_start:
            self.pool.start_from(self._given, state.global_step)
            return
        self.pool.step(state.global_step)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if getattr(state, "is_world_process_zero", True):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            folder.mkdir(parents=True, exist_ok=True)
            save_state(self.state_dict(), os.fspath(folder / STATE_FILE))

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        for d in self._targets:
            d.reset_format()
        self._targets = []

    # state: the pool's (a child, loaded in the same validate-then-assign step) and the sizes of the training set
    # it belongs to. No configuration: the callback's arguments are the training set and the mining keywords, given
    # again when the trainer is rebuilt; the pool's state holds its refresh settings.
    state_fields = {"num_queries": Int(0), "corpus_size": Int(0)}
    state_children = {"pool": "pool"}
    save_config = False

    def _state_values(self) -> dict[str, Any]:
        return {"num_queries": len(self.texts.queries), "corpus_size": len(self.texts.corpus)}

    def _check_state(self, values: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
        """The saved sizes are this training set's; the negatives have one column per negative column."""
        for key, want in (("num_queries", len(self.texts.queries)), ("corpus_size", len(self.texts.corpus))):
            if values[key] != want:
                raise ValueError(f"state has {key} = {values[key]!r}, this training set has {want}")
        indices = state["pool"]["indices"]
        if indices is not None and np.asarray(indices).shape[1] != len(self.negative_columns):
            raise ValueError(f"state negatives have shape {tuple(np.asarray(indices).shape)}, this training set has "
                             f"{len(self.negative_columns)} negative columns")
        return values

    def _assign_state(self, values: dict[str, Any]) -> None:
        """Nothing of its own: the sizes were checked, the pool is loaded as a child."""
