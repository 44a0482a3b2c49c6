"""mine_from_dataset: sentence-transformers' mine_hard_negatives interface over hardmine's miner.

A `datasets.Dataset` of (anchor, positive) rows and a model with `encode` in, a `datasets.Dataset` that
sentence-transformers' trainer takes unchanged out. Same parameter names and semantics as ST 6.3's
`sentence_transformers.util.mine_hard_negatives` (include_positives=False), with these differences: a named column
that is missing is an error (ST silently falls back to the first two columns); random sampling is seeded by `seed`.
hardmine's own rank rule is `range_rule="ranks"`. As in ST 6.3 (and unlike 6.2), a query's own text is never its
negative (exclude_anchor_text=False gives 6.2's choice back), a cross_encoder re-scores even when no score filter
is set, and the candidates retrieved per query are range_max + the most rows of one anchor + 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardmine._checks import check_choice, check_int
from hardmine.retrieval.cache import cached_embeddings, model_fingerprint, texts_key
from hardmine.retrieval.encode import check_encoder, encode_side
from hardmine.retrieval.filters import RANGE_RULES
from hardmine.retrieval.formats import check_output_format, st_columns
from hardmine.retrieval.mining import _filters, mine_hard_negatives
from hardmine.retrieval.rescore import pair_rescorer
from hardmine.retrieval.result import MinedNegatives
from hardmine.retrieval.sampling import SAMPLINGS
from hardmine.retrieval.texts import TextPairs, check_texts


@dataclass(frozen=True)
class MinedTexts:
    """What mine_from_dataset mined, before formatting: the negatives over `texts.corpus` ids, and the texts with
    their deduplication mapping."""

    mined: MinedNegatives
    texts: TextPairs


def mine_from_dataset(
    dataset: Any,
    model: Any,
    anchor_column_name: str | None = None,
    positive_column_name: str | None = None,
    corpus: list[str] | None = None,
    cross_encoder: Any = None,
    range_min: int = 0,
    range_max: int | None = None,
    max_score: float | None = None,
    min_score: float | None = None,
    absolute_margin: float | None = None,
    relative_margin: float | None = None,
    num_negatives: int = 3,
    sampling_strategy: str = "top",
    query_prompt_name: str | None = None,
    query_prompt: str | None = None,
    corpus_prompt_name: str | None = None,
    corpus_prompt: str | None = None,
    output_format: str = "triplet",
    output_scores: bool = False,
    batch_size: int = 32,
    faiss_batch_size: int = 16384,
    verbose: bool = True,
    cache_folder: str | Path | None = None,
    *,
    index: Any = "exact",
    range_rule: str = "survivors",
    exclude_anchor_text: bool = True,
    seed: int = 0,
    return_mined: bool = False,
) -> Any:
    """Add `num_negatives` hard negatives to (anchor, positive) rows, as sentence-transformers does.

    dataset: a `datasets.Dataset`; anchor / positive columns default to its first two. model: anything with
    `encode(texts, batch_size=, convert_to_numpy=, normalize_embeddings=, show_progress_bar=)` (its
    encode_query / encode_document are used when present). corpus: extra candidate texts (a list or a dataset
    column); the candidates are the distinct texts of corpus + positives, so a text identical to a query's positive
    is never its negative; exclude_anchor_text (default, as ST >= 6.3) also keeps the text identical to the query
    out. Duplicate anchors share their positives.
    cross_encoder: a CrossEncoder-like object with `predict(pairs)` or a callable rescore(query_ids, corpus_ids)
    over `texts.queries` / `texts.corpus` ids; candidates and positives are re-scored, then ranked and filtered on
    those scores. range_max default: range_min + num_negatives (+ 9 num_negatives with a score filter) + the most
    rows of one anchor, as in ST; under range_rule="survivors" the top range_max + the most rows of one anchor + 1
    candidates are retrieved (ST 6.3). faiss_batch_size: queries per search block; index: "exact", "ivf", "hnsw" or a
    SearchBackend. cache_folder: embeddings cached by hash of model weights, prompt and texts.

    Returns a `datasets.Dataset` in `output_format` ("triplet", "n-tuple", "labeled-pair", "labeled-list"; see
    formats.st_columns), or (dataset, MinedTexts) with return_mined.
    """
    from datasets import Dataset

    anchor_col, positive_col = _columns(dataset, anchor_column_name, positive_column_name)
    check_encoder("model", model)
    check_output_format(output_format)
    check_choice("sampling_strategy", sampling_strategy, SAMPLINGS)
    check_choice("range_rule", range_rule, RANGE_RULES)
    num_negatives = check_int("num_negatives", num_negatives)
    range_min = check_int("range_min", range_min, minimum=0)
    batch_size = check_int("batch_size", batch_size)
    faiss_batch_size = check_int("faiss_batch_size", faiss_batch_size)
    anchors = check_texts(f"dataset[{anchor_col!r}]", dataset[anchor_col])
    positives = check_texts(f"dataset[{positive_col!r}]", dataset[positive_col])
    extra = None if corpus is None else check_texts("corpus", corpus)
    texts = TextPairs.from_rows(anchors, positives, extra)
    most_rows = int(np.bincount(texts.row_query).max())  # ST's max_positives: rows, duplicates counted
    if range_max is None:
        scored = any(v is not None for v in (absolute_margin, relative_margin, max_score)) or (
            cross_encoder is not None and min_score is not None)
        range_max = range_min + num_negatives * (10 if scored else 1) + most_rows
    _filters(num_negatives, range_min, range_max, max_score, min_score, absolute_margin, relative_margin)
    rescore = pair_rescorer("cross_encoder", cross_encoder, texts.queries, texts.corpus, batch_size)

    fingerprint = model_fingerprint(model) if cache_folder is not None else ""
    q_emb = _encoded(model, texts.queries, "query", query_prompt, query_prompt_name, batch_size, verbose,
                     cache_folder, fingerprint)
    c_emb = _encoded(model, texts.corpus, "document", corpus_prompt, corpus_prompt_name, batch_size, verbose,
                     cache_folder, fingerprint)
    mined = mine_hard_negatives(q_emb, c_emb, texts.positives, num_negatives=num_negatives, range_min=range_min,
                                range_max=range_max, max_score=max_score, min_score=min_score,
                                absolute_margin=absolute_margin, relative_margin=relative_margin,
                                sampling=sampling_strategy, index=index, metric="cosine",
                                exclude=texts.identical_to_query() if exclude_anchor_text else None, seed=seed,
                                batch_size=faiss_batch_size, progress=verbose, range_rule=range_rule,
                                rescore=rescore, pool_extra=most_rows + 1 if range_rule == "survivors" else None)
    out = Dataset.from_dict(st_columns(mined.indices, mined.scores, mined.positives, mined.positive_pair_scores,
                                       texts.queries, texts.corpus, output_format, anchor_col, positive_col,
                                       output_scores))
    if verbose:
        for name, value in mined.summary().items():
            print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value:,}")
        for note in mined.notes():
            print(f"note: {note}")
    return (out, MinedTexts(mined, texts)) if return_mined else out


def _columns(dataset: Any, anchor: str | None, positive: str | None) -> tuple[str, str]:
    columns = getattr(dataset, "column_names", None)
    if not isinstance(columns, list):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty: it needs (anchor, positive) rows")
    for name, value in (("anchor_column_name", anchor), ("positive_column_name", positive)):
        if value is not None and value not in columns:
            raise ValueError(f"{name} = {value!r} is not a column of dataset (columns: {columns})")
    rest = [c for c in columns if c not in (anchor, positive)]
    anchor = anchor if anchor is not None else rest.pop(0) if rest else None
    positive = positive if positive is not None else (rest.pop(0) if rest else None)
    if anchor is None or positive is None or anchor == positive:
        raise ValueError(f"dataset needs an anchor and a positive column, got columns {columns}")
    return anchor, positive


def _encoded(model: Any, texts: list[str], side: str, prompt: str | None, prompt_name: str | None,
             batch_size: int, progress: bool, folder: str | Path | None, fingerprint: str) -> np.ndarray:
    key = texts_key(fingerprint, texts, side, prompt, prompt_name) if folder is not None else ""
    emb, _ = cached_embeddings(folder, side, key, len(texts),
                               lambda: encode_side(model, texts, side, batch_size, prompt, prompt_name, progress))
    return emb
