"""Retrieval mining speed against sentence-transformers (ST) and FAISS, and approximate-search recall on real
MiniLM embeddings, all in the same process, one thread, denormals flushed.

1. Against ST's `mine_hard_negatives` at 20k corpus texts (real MiniLM embeddings of WordNet glosses and lemmas:
   3,000 gloss -> lemma pairs, 20k lemmas) and at 1M corpus texts (random unit 384-d embeddings). Both libraries
   get the same dataset, corpus and a model whose `encode` looks the embeddings up, so what is timed is mining
   (deduplication, search, filters, the output dataset), never encoding. Methods run in a rotating order each
   round; the ratios printed are medians over rounds. At 20k the two libraries' rows are compared as well
   (identical negative sets per row, with range_min too).
2. IVF and HNSW against exact search on the real embeddings: recall@k of the top-k lists and the speed-up of the
   search (and of build + search).

    python benchmarks/bench_retrieval.py                          # both sections
    python benchmarks/bench_retrieval.py --big 200000 --big-queries 500   # a quicker run

Section 1 (20k) and 2 need `build/wordnet/{lemmas,glosses}.npy` (written by examples/wordnet_hard_negatives.py).
"""

from __future__ import annotations

import os

# torch and faiss-cpu each ship an OpenMP runtime; with both spin-waiting, each slows the other several-fold on a
# small or shared machine. Passive waiting must be chosen before either library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

from hardmine.retrieval import (  # noqa: E402
    ExactSearch,
    HNSWSearch,
    IVFSearch,
    mine_from_dataset,
    mine_hard_negatives,
)
from hardmine.retrieval.embeddings import Embeddings  # noqa: E402


class LookupModel:
    """ST's model API over a fixed table: text -> embedding row (`row_of`), nothing encoded."""

    def __init__(self, table: np.ndarray, row_of) -> None:
        self.table, self.row_of, self.device = table, row_of, torch.device("cpu")

    def encode(self, texts, **kwargs):
        return self.table[self.row_of(texts)]

    encode_query = encode_document = encode

    def get_embedding_dimension(self) -> int:
        return self.table.shape[1]

    def similarity(self, a, b):
        return torch.as_tensor(a) @ torch.as_tensor(b).T

    def similarity_pairwise(self, a, b):
        return (torch.as_tensor(a) * torch.as_tensor(b)).sum(-1)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def rounds(methods: dict, n: int, label: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict = {}
    names = list(methods)
    for r in range(n):
        order = names[r % len(names):] + names[:r % len(names)]
        took = {}
        for name in order:
            took[name], outputs[name] = timed(methods[name])
            times[name].append(took[name])
        print(f"  {label} round {r + 1}/{n}: " + ", ".join(f"{k} {took[k]:.2f}s" for k in names), flush=True)
    return times, outputs


def medians(methods: dict, n: int, label: str) -> dict[str, list[float]]:
    """Run `rounds`, print each method's median time, return the per-round times."""
    times, _ = rounds(methods, n, label)
    for name in methods:
        print(f"  {name}: median {statistics.median(times[name]):.3f}s", flush=True)
    return times


def ratio(times, a, b) -> float:
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def same_rows(ours: Dataset, theirs: Dataset) -> tuple[int, int]:
    """(rows of `theirs` whose (anchor, positive) row in `ours` has the same negative set, rows of `theirs`)."""
    neg = [c for c in ours.column_names if c.startswith("negative")]
    mine = {(r["anchor"], r["positive"]): frozenset(r[c] for c in neg) for r in ours}
    same = sum(mine.get((r["anchor"], r["positive"])) == frozenset(r[c] for c in neg) for r in theirs)
    return same, len(theirs)


def vs_st_20k(emb_dir: Path, args) -> None:
    from sentence_transformers.util import mine_hard_negatives as st_mine

    from hardmine.datasets.wordnet import load_wordnet_nouns

    wn = load_wordnet_nouns(args.wordnet)
    task = wn.retrieval_task()
    lemmas, glosses = np.load(emb_dir / "lemmas.npy"), np.load(emb_dir / "glosses.npy")
    rng = np.random.default_rng(args.seed)
    rows = rng.choice(len(wn), args.small_queries, replace=False)
    anchors = [task.queries[r] for r in rows]
    positives = [task.corpus[task.positives[r][0]] for r in rows]
    pos_ids = {task.positives[r][0] for r in rows}
    others = rng.permutation([i for i in range(len(task.corpus)) if i not in pos_ids])
    corpus_ids = np.concatenate([sorted(pos_ids), others[:args.small - len(pos_ids)]])
    corpus = [task.corpus[i] for i in corpus_ids]
    table = np.concatenate([lemmas, glosses])
    index = {t: i for i, t in enumerate(task.corpus)}
    index.update({t: len(lemmas) + i for i, t in enumerate(task.queries)})
    model = LookupModel(table, lambda texts: np.fromiter((index[t] for t in texts), dtype=np.int64))
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    print(f"\n20k: {len(ds)} gloss -> lemma pairs, {len(set(corpus) | set(positives))} distinct corpus texts, "
          f"real MiniLM embeddings", flush=True)
    kw = dict(num_negatives=5, range_max=50, output_format="n-tuple", verbose=False)
    _, (q_emb, c_emb, pos) = timed(lambda: _embedded(ds, corpus, model))
    methods = {
        "st": lambda: st_mine(ds, model, corpus=corpus, **kw),
        "st_faiss": lambda: st_mine(ds, model, corpus=corpus, use_faiss=True, **kw),
        "hm_dataset": lambda: mine_from_dataset(ds, model, corpus=corpus, **kw),
        "hm_embeddings": lambda: mine_hard_negatives(q_emb, c_emb, pos, num_negatives=5, range_max=50,
                                                     progress=False),
    }
    times = medians(methods, args.rounds, "20k")
    print(f"  ratio hm_dataset / st {ratio(times, 'hm_dataset', 'st'):.3f}, / st_faiss "
          f"{ratio(times, 'hm_dataset', 'st_faiss'):.3f}; hm_embeddings / st {ratio(times, 'hm_embeddings', 'st'):.3f}"
          f", / st_faiss {ratio(times, 'hm_embeddings', 'st_faiss'):.3f} (target <= 1)", flush=True)
    print("  parity with ST (ST's rows whose negative set hardmine's row for the same anchor and positive equals"
          " / ST's rows):", flush=True)
    for extra in ({}, {"range_min": 10}, {"relative_margin": 0.05}, {"range_min": 10, "relative_margin": 0.05}):
        p = {**kw, **extra}
        theirs = st_mine(ds, model, corpus=corpus, **p)
        ours = mine_from_dataset(ds, model, corpus=corpus, **p)
        own_rule = mine_from_dataset(ds, model, corpus=corpus, range_rule="ranks", **p)
        s, n = same_rows(ours, theirs)
        s2, n2 = same_rows(own_rule, theirs)
        print(f"    {extra or 'range_max=50'}: ST's rule {s}/{n} (rows {len(ours)} vs {len(theirs)}); "
              f"hardmine's rule (ranks) {s2}/{n2} (rows {len(own_rule)})", flush=True)


def _embedded(ds, corpus, model):
    from hardmine.retrieval.texts import TextPairs

    t = TextPairs.from_rows(ds["anchor"], ds["positive"], corpus)
    return model.encode(t.queries), model.encode(t.corpus), t.positives


def vs_st_1m(args) -> None:
    from sentence_transformers.util import mine_hard_negatives as st_mine

    rng = np.random.default_rng(args.seed)
    n, d = args.big, args.dim
    table = np.empty((n + args.big_queries, d), dtype=np.float32)
    for start in range(0, len(table), 131072):
        x = rng.standard_normal((min(131072, len(table) - start), d), dtype=np.float32)
        table[start:start + len(x)] = x / np.linalg.norm(x, axis=1, keepdims=True)
    corpus = [f"d{i}" for i in range(n)]
    anchors = [f"q{i}" for i in range(args.big_queries)]
    positives = [f"d{i}" for i in rng.choice(n, args.big_queries, replace=False)]

    def rows_of(texts):
        return np.fromiter((int(t[1:]) + (n if t[0] == "q" else 0) for t in texts), dtype=np.int64,
                           count=len(texts))

    model = LookupModel(table, rows_of)
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives})
    q_emb, c_emb = table[n:], table[:n]
    pos = rows_of(positives)
    flat = faiss.IndexFlatIP(d)
    flat.add(c_emb)
    kw = dict(num_negatives=5, range_max=50, output_format="n-tuple", verbose=False)
    print(f"\n1M: {args.big_queries} queries x {n:,} corpus texts, random unit {d}-d embeddings "
          f"(ST without FAISS is not run: its score matrix is queries x corpus float32)", flush=True)
    methods = {
        "st_faiss": lambda: st_mine(ds, model, corpus=corpus, use_faiss=True, **kw),
        "hm_dataset": lambda: mine_from_dataset(ds, model, corpus=corpus, **kw),
        "hm_embeddings": lambda: mine_hard_negatives(q_emb, c_emb, pos, num_negatives=5, range_max=50,
                                                     progress=False),
        "faiss_flat": lambda: flat.search(q_emb, 51),
    }
    times = medians(methods, args.rounds, "1M")
    print(f"  ratio hm_dataset / st_faiss {ratio(times, 'hm_dataset', 'st_faiss'):.3f}; hm_embeddings / st_faiss "
          f"{ratio(times, 'hm_embeddings', 'st_faiss'):.3f}; hm_embeddings / faiss_flat search "
          f"{ratio(times, 'hm_embeddings', 'faiss_flat'):.3f} (targets <= 1; <= 1.2 vs FAISS flat)", flush=True)


def approximate(emb_dir: Path, args) -> None:
    c = np.load(emb_dir / "lemmas.npy")
    q_all = np.load(emb_dir / "glosses.npy")
    q = q_all[np.random.default_rng(args.seed).choice(len(q_all), args.approx_queries, replace=False)]
    k = args.k
    pos = np.random.default_rng(args.seed).integers(len(c), size=len(q))  # any id: recall compares top-k lists
    corpus = Embeddings("corpus_emb", c, cosine=True)
    queries = Embeddings("query_emb", q, cosine=True)
    blocks = [(0, len(q), k + 1)]
    exact_t = []
    for _ in range(args.rounds):
        t, found = timed(lambda: ExactSearch().search(queries, corpus, blocks))
        exact_t.append(t)
    exact = type("R", (), {"indices": _drop_positive(found[0][1], pos, k)})
    t_exact = statistics.median(exact_t)
    print(f"\napproximate vs exact on real MiniLM embeddings: {len(q)} WordNet glosses x {len(c):,} lemmas, "
          f"top-{k}; exact search {t_exact:.2f}s (median of {args.rounds})", flush=True)

    def recall(got):
        return float(np.mean([np.intersect1d(a[a >= 0], e[e >= 0]).size / max(1, (e >= 0).sum())
                              for a, e in zip(got.indices, exact.indices)]))

    ivf = IVFSearch(nprobe=1, seed=args.seed)
    index = ivf.build(corpus)
    build_ivf = ivf.build_seconds_
    for nprobe in args.nprobe:
        searches = []
        for _ in range(args.rounds):
            index.nprobe = nprobe
            t, got = timed(lambda: ivf.search_index(index, queries, blocks, False))
            searches.append(t)
        ids = got[0][1]
        mined = type("R", (), {"indices": _drop_positive(ids, pos, k)})
        s = statistics.median(searches)
        print(f"  IVF nlist {index.nlist} nprobe {nprobe:4d}: recall@{k} {recall(mined):.3f}, search {s:.2f}s, "
              f"speed-up {t_exact / s:.1f}x (with the {build_ivf:.1f}s build: {t_exact / (s + build_ivf):.2f}x)",
              flush=True)
    hnsw = HNSWSearch(m=32, ef_construction=80)
    graph = hnsw.build(corpus)
    build_hnsw = hnsw.build_seconds_
    for ef in args.ef_search:
        searches = []
        for _ in range(args.rounds):
            graph.hnsw.efSearch = max(ef, k + 1)
            t, got = timed(lambda: hnsw.search_index(graph, queries, blocks, False))
            searches.append(t)
        mined = type("R", (), {"indices": _drop_positive(got[0][1], pos, k)})
        s = statistics.median(searches)
        print(f"  HNSW M 32 efSearch {ef:4d}: recall@{k} {recall(mined):.3f}, search {s:.2f}s, speed-up "
              f"{t_exact / s:.1f}x (with the {build_hnsw:.1f}s build: {t_exact / (s + build_hnsw):.2f}x)",
              flush=True)


def _drop_positive(ids: np.ndarray, pos: np.ndarray, k: int) -> np.ndarray:
    """The top-k ids without each query's positive, as mining returns them."""
    keep = ids != pos[:, None]
    out = np.full((len(ids), k), -1, dtype=np.int64)
    for i, (row, m) in enumerate(zip(ids, keep)):
        r = row[m][:k]
        out[i, :len(r)] = r
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet")
    parser.add_argument("--embeddings", default="build/wordnet")
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--small-queries", type=int, default=3000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--big-queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--approx-queries", type=int, default=2000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--sections", nargs="+", default=["20k", "1m", "approx"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    torch.set_flush_denormal(True)
    print(f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}", flush=True)
    emb_dir = Path(args.embeddings)
    real = (emb_dir / "lemmas.npy").is_file() and (emb_dir / "glosses.npy").is_file()
    if not real and ("20k" in args.sections or "approx" in args.sections):
        print(f"no MiniLM embeddings in {emb_dir}: run examples/wordnet_hard_negatives.py first; skipping the "
              "sections that need them", flush=True)
    if "20k" in args.sections and real:
        vs_st_20k(emb_dir, args)
    if "1m" in args.sections:
        vs_st_1m(args)
    if "approx" in args.sections and real:
        approximate(emb_dir, args)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
