"""`hardmine mine-negatives`: mine hard negatives from files (embeddings or texts) or from WordNet."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from hardmine.retrieval.files import read_embeddings_or_texts, read_qrels


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
    relative_margin: Annotated[float | None, typer.Option(help="Drop above p - |p| * margin.")] = None,
    sampling: Annotated[str, typer.Option(help="top or random.")] = "top",
    index: Annotated[str, typer.Option(help="exact, ivf or hnsw.")] = "exact",
    metric: Annotated[str, typer.Option(help="cosine or dot.")] = "cosine",
    batch_size: Annotated[int, typer.Option(help="Queries per search block.")] = 1024,
    limit: Annotated[int | None, typer.Option(help="Mine for the first N queries only.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of random sampling.")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Mine hard negatives for every query and write training rows for sentence-transformers' losses."""
    # faiss-cpu and torch each bring an OpenMP runtime; spinning waits make them slow each other down.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from hardmine.retrieval.encode import encode_texts, load_encoder
    from hardmine.retrieval.mining import mine_hard_negatives
    from hardmine.retrieval.report import print_summary

    if out.suffix not in (".parquet", ".jsonl"):
        raise ValueError(f"--out must end in .parquet or .jsonl, got {out.name!r}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
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
    if texts[0]:
        encoder = load_encoder(model)
        q_emb = encode_texts(q_in, encoder, progress=progress)
        c_emb = encode_texts(c_in, encoder, progress=progress)
    else:
        q_emb, c_emb = q_in, c_in
    mined = mine_hard_negatives(q_emb, c_emb, positives, num_negatives=num_negatives, range_min=range_min,
                                range_max=range_max, max_score=max_score, min_score=min_score,
                                absolute_margin=absolute_margin, relative_margin=relative_margin, sampling=sampling,
                                index=index, metric=metric, seed=seed, batch_size=batch_size, progress=progress)
    write = mined.to_parquet if out.suffix == ".parquet" else mined.to_jsonl
    rows = write(out, q_in, c_in) if texts[0] else write(out)
    print_summary(mined, rows, out)
