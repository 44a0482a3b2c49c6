"""`hardmine mine-negatives`: mine hard negatives from files (embeddings or texts) or from WordNet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from hardmine.retrieval.files import read_embeddings_or_texts, read_qrels

DEFAULT_RELATIVE_MARGIN = 0.05


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/hardmine/embeddings (default ~/.cache/hardmine/embeddings)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hardmine" / "embeddings"


def mine_negatives(
    out: Annotated[Path, typer.Option(help="Output file, .parquet or .jsonl (anchor, positive, negative_1..n).")],
    queries: Annotated[Path | None, typer.Option(help="Query embeddings (.npy) or texts (.parquet/.jsonl).")] = None,
    corpus: Annotated[Path | None, typer.Option(help="Corpus embeddings (.npy) or texts (.parquet/.jsonl).")] = None,
    qrels: Annotated[Path | None, typer.Option(help="Positive (query row, corpus row) pairs: .tsv/.parquet/.jsonl.")]
    = None,
    wordnet: Annotated[Path | None, typer.Option(help="WordNet dict dir: glosses as queries, lemmas as corpus.")]
    = None,
    model: Annotated[Path | None, typer.Option(help="Local sentence-transformers model dir for texts.")] = None,
    column: Annotated[str, typer.Option(help="Text column of query/corpus files.")] = "text",
    num_negatives: Annotated[int, typer.Option(help="Negatives per query.")] = 5,
    range_min: Annotated[int, typer.Option(help="First rank considered.")] = 0,
    range_max: Annotated[int | None, typer.Option(help="Rank window end (default range_min + 10 n).")] = None,
    max_score: Annotated[float | None, typer.Option(help="Drop candidates scoring above.")] = None,
    min_score: Annotated[float | None, typer.Option(help="Drop candidates scoring below.")] = None,
    absolute_margin: Annotated[float | None, typer.Option(help="Drop above lowest positive - margin.")] = None,
    relative_margin: Annotated[float, typer.Option(
        help="Drop above p - |p| * margin (p: lowest positive score): keeps likely false negatives out.")]
    = DEFAULT_RELATIVE_MARGIN,
    margin: Annotated[bool, typer.Option(help="Apply --relative-margin; --no-margin mines without it.")] = True,
    sampling: Annotated[str, typer.Option(help="top or random.")] = "top",
    index: Annotated[str, typer.Option(help="exact, ivf or hnsw.")] = "exact",
    metric: Annotated[str, typer.Option(help="cosine or dot.")] = "cosine",
    batch_size: Annotated[int, typer.Option(help="Queries per search block.")] = 1024,
    limit: Annotated[int | None, typer.Option(help="Mine for the first N queries only.")] = None,
    corpus_limit: Annotated[int | None, typer.Option(
        help="Keep the first N corpus rows plus every positive of the queries mined.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        help="Where encoded texts are cached by content hash (default ~/.cache/hardmine/embeddings).")] = None,
    cache: Annotated[bool, typer.Option(help="Cache encoded texts; --no-cache encodes every time.")] = True,
    seed: Annotated[int, typer.Option(help="Seed of random sampling.")] = 0,
    progress: Annotated[bool, typer.Option(help="Progress and estimates on stderr.")] = True,
) -> None:
    """Mine hard negatives for every query and write training rows for sentence-transformers' losses.

    A relative margin of 0.05 is on by default (measured on WordNet: without it, most mined negatives are
    synonyms of the positive). Texts are deduplicated, encoded once and cached; progress goes to stderr.
    """
    # faiss-cpu and torch each bring an OpenMP runtime; spinning waits make them slow each other down.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from hardmine.retrieval.cli_encode import encode_for_cli, say
    from hardmine.retrieval.mining import _filters, mine_hard_negatives
    from hardmine.retrieval.summary import print_mined_summary
    from hardmine.retrieval.texts import dedupe, limit_corpus

    if out.suffix not in (".parquet", ".jsonl"):
        raise ValueError(f"--out must end in .parquet or .jsonl, got {out.name!r}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name ending in .parquet or .jsonl")
    for name, value in (("--limit", limit), ("--corpus-limit", corpus_limit), ("--num-negatives", num_negatives),
                        ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    rel = relative_margin if margin else None
    _filters(num_negatives, range_min, range_max, max_score, min_score, absolute_margin, rel)
    if wordnet is not None:
        if queries or corpus or qrels:
            raise ValueError("give either --wordnet or --queries/--corpus/--qrels, not both")
        from hardmine.datasets.wordnet import load_wordnet_nouns

        task = load_wordnet_nouns(wordnet).retrieval_task()
        q_in, c_in, positives = task.queries, task.corpus, task.positives
    else:
        missing = [name for name, v in (("--queries", queries), ("--corpus", corpus), ("--qrels", qrels)) if v is None]
        if missing:
            raise ValueError(f"missing {', '.join(missing)} (or give --wordnet DIR)")
        q_in = read_embeddings_or_texts(queries, "queries", column)
        c_in = read_embeddings_or_texts(corpus, "corpus", column)
        positives = read_qrels(qrels, len(q_in))
    if limit is not None:
        q_in, positives = q_in[:limit], positives[:limit]
    texts = isinstance(q_in, list), isinstance(c_in, list)
    if texts[0] != texts[1]:
        raise ValueError("queries and corpus must both be embeddings (.npy) or both be texts")
    if corpus_limit is not None:
        kept = limit_corpus(len(c_in), positives, corpus_limit)
        c_in = [c_in[i] for i in kept] if texts[1] else c_in[kept]
        positives = [np.searchsorted(kept, p).tolist() for p in positives]
    if texts[1]:  # identical corpus texts become one candidate, so a copy of a positive is never its negative
        c_in, inverse = dedupe(c_in)
        positives = [sorted(set(inverse[p].tolist())) for p in positives]
    if progress:
        say(f"mining {len(q_in):,} queries against {len(c_in):,} corpus rows ({index} search, "
            f"{len(q_in) * len(c_in) / 1e9:.2f} G scores)")
    if texts[0]:
        from hardmine.retrieval.cache import model_fingerprint
        from hardmine.retrieval.encode import load_encoder

        encoder = load_encoder(model)
        fingerprint = model_fingerprint(encoder)
        folder = (cache_dir or default_cache_dir()) if cache else None
        q_emb = encode_for_cli(encoder, fingerprint, q_in, "queries", "query", folder, progress)
        c_emb = encode_for_cli(encoder, fingerprint, c_in, "corpus texts", "document", folder, progress)
    else:
        q_emb, c_emb = q_in, c_in
    mined = mine_hard_negatives(q_emb, c_emb, positives, num_negatives=num_negatives, range_min=range_min,
                                range_max=range_max, max_score=max_score, min_score=min_score,
                                absolute_margin=absolute_margin, relative_margin=rel, sampling=sampling,
                                index=index, metric=metric, seed=seed, batch_size=batch_size, progress=progress)
    write = mined.to_parquet if out.suffix == ".parquet" else mined.to_jsonl
    rows = write(out, q_in, c_in) if texts[0] else write(out)
    print_mined_summary(mined, rows, out)
