"""Re-scoring retrieved candidates with a stronger scorer (a cross-encoder, RocketQA-style denoising).

A rescorer maps M (query id, corpus id) pairs, int64 [M] each, to float scores [M]; higher means more related.
The candidates are then re-ranked by these scores, and the filters and the margins use them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Rescorer = Callable[[np.ndarray, np.ndarray], Any]


def check_rescorer(name: str, value: Any) -> Rescorer | None:
    """`value` if it is None or callable as rescore(query_ids, corpus_ids); else a TypeError naming `name`."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable as {name}(query_ids, corpus_ids) -> scores, "
                        f"got {type(value).__name__}")
    return value


def pair_rescorer(name: str, model: Any, queries: Sequence[str], corpus: Sequence[str],
                  batch_size: int = 32) -> Rescorer | None:
    """A rescorer from `model`: None, a callable rescore(query_ids, corpus_ids), or an object with
    `predict(pairs)` (a sentence-transformers CrossEncoder) scoring (query text, corpus text) pairs."""
    if model is None:
        return None
    predict = getattr(model, "predict", None)
    if callable(predict):
        def scores(query_ids: np.ndarray, corpus_ids: np.ndarray) -> Any:
            pairs = [(queries[q], corpus[c]) for q, c in zip(query_ids.tolist(), corpus_ids.tolist())]
            try:
                return predict(pairs, batch_size=batch_size, show_progress_bar=False)
            except TypeError:  # a minimal predict(pairs)
                return predict(pairs)
    elif callable(model):
        scores = model
    else:
        raise TypeError(f"{name} must be a callable rescore(query_ids, corpus_ids) or have a predict(pairs) method, "
                        f"got {type(model).__name__}")

    def rescore(query_ids: np.ndarray, corpus_ids: np.ndarray) -> np.ndarray:
        return rescore_pairs(name, scores, query_ids, corpus_ids)  # errors name `name`

    return rescore


def rescore_pairs(name: str, rescore: Rescorer, query_ids: np.ndarray, corpus_ids: np.ndarray) -> np.ndarray:
    """Call `rescore` on M pairs and check its answer: float64 [M], finite, else a ValueError naming `name`."""
    m = len(query_ids)
    if m == 0:
        return np.zeros(0, dtype=np.float64)
    out = rescore(query_ids.astype(np.int64, copy=False), corpus_ids.astype(np.int64, copy=False))
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    out = np.asarray(out)
    if out.dtype.kind not in "fiu":
        raise ValueError(f"{name} must return numbers, got dtype {out.dtype}")
    if out.shape not in ((m,), (m, 1)):
        raise ValueError(f"{name} must return scores of shape [{m}] for {m} pairs, got shape {tuple(out.shape)}")
    out = out.astype(np.float64).reshape(-1)
    bad = ~np.isfinite(out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} returned a non-finite score ({out[i]}) for pair {i} (query {int(query_ids[i])}, "
                         f"corpus {int(corpus_ids[i])})")
    return out

