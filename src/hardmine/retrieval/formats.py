"""sentence-transformers' four training-row layouts, built from mined negatives (one row order, as ST's)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hardmine._checks import check_choice
from hardmine.retrieval.idlists import IdLists

OUTPUT_FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list")


def check_output_format(value: Any) -> str:
    check_choice("output_format", value, OUTPUT_FORMATS)
    return value


def st_columns(indices: np.ndarray, scores: np.ndarray, positives: IdLists, positive_scores: np.ndarray,
               queries: Sequence[Any], corpus: Sequence[Any], output_format: str = "triplet",
               anchor_column_name: str = "anchor", positive_column_name: str = "positive",
               output_scores: bool = False) -> dict[str, list[Any]]:
    """Columns in `output_format` for Q queries: indices int64 [Q, n] (-1 = not found), scores float [Q, n],
    positives (the corpus ids per query), positive_scores float [nnz] (one per positive, in `positives` order).

    "triplet": (anchor, positive, negative) per query x positive x found negative; "n-tuple": (anchor, positive,
    negative_1..n) per query x positive with all n found; "labeled-pair": (anchor, positive, label) with the
    positives (label 1) then the found negatives (label 0) of each query; "labeled-list": (anchor, [positive,
    negatives...], labels) per query x positive with at least one negative found. output_scores adds a `scores`
    column ("triplet", "n-tuple") or replaces the labels by scores ("score" / "scores"), as sentence-transformers
    does.
    """
    check_output_format(output_format)
    if anchor_column_name == positive_column_name:
        raise ValueError(f"anchor_column_name and positive_column_name are both {anchor_column_name!r}")
    a, p = anchor_column_name, positive_column_name
    cols: dict[str, list[Any]] = {a: [], p: []}
    found = indices >= 0
    q_of = np.repeat(np.arange(len(indices)), positives.counts)
    if output_format == "triplet":
        cols["negative"] = []
        if output_scores:
            cols["scores"] = []
        for q, c, ps in zip(q_of.tolist(), positives.ids.tolist(), positive_scores.tolist()):
            for j in np.flatnonzero(found[q]).tolist():
                cols[a].append(queries[q])
                cols[p].append(corpus[c])
                cols["negative"].append(corpus[int(indices[q, j])])
                if output_scores:
                    cols["scores"].append([ps, float(scores[q, j])])
    elif output_format == "n-tuple":
        n = indices.shape[1]
        for j in range(n):
            cols[f"negative_{j + 1}"] = []
        if output_scores:
            cols["scores"] = []
        for q, c, ps in zip(q_of.tolist(), positives.ids.tolist(), positive_scores.tolist()):
            if not found[q].all():
                continue
            cols[a].append(queries[q])
            cols[p].append(corpus[c])
            for j in range(n):
                cols[f"negative_{j + 1}"].append(corpus[int(indices[q, j])])
            if output_scores:
                cols["scores"].append([ps] + scores[q].astype(float).tolist())
    elif output_format == "labeled-pair":
        label = "score" if output_scores else "label"
        cols[label] = []
        for q in range(len(indices)):
            lo, hi = positives.offsets[q], positives.offsets[q + 1]
            docs = [(int(c), float(positive_scores[i]), 1) for i, c in zip(range(lo, hi), positives.ids[lo:hi])]
            docs += [(int(indices[q, j]), float(scores[q, j]), 0) for j in np.flatnonzero(found[q])]
            for c, score, lab in docs:
                cols[a].append(queries[q])
                cols[p].append(corpus[c])
                cols[label].append(score if output_scores else lab)
    else:
        label = "scores" if output_scores else "labels"
        cols[label] = []
        for q, c, ps in zip(q_of.tolist(), positives.ids.tolist(), positive_scores.tolist()):
            js = np.flatnonzero(found[q])
            if not js.size:
                continue
            cols[a].append(queries[q])
            cols[p].append([corpus[c]] + [corpus[int(indices[q, j])] for j in js])
            cols[label].append([ps] + scores[q, js].astype(float).tolist() if output_scores else [1] + [0] * js.size)
    return cols
